using System.Text.Json;
using Llava.Formats.Safetensors;
using Llava.Vision;

namespace Llava.Training.Model;

public sealed partial class TrainableClipVision
{
    /// <summary>
    /// Writes a Hugging Face CLIP vision checkpoint directory: config.json (a CLIPConfig with vision_config and
    /// architectures [CLIPVisionModel], the form of openai/clip-vit-large-patch14-336 that LLaVA's mm_vision_tower
    /// names), model.safetensors (f32, vision_model.* names, post_layernorm included) and preprocessor_config.json
    /// (CLIPImageProcessor: bicubic shortest-edge resize and center crop to the tower's image size, OpenAI CLIP
    /// mean/std unless given). Loadable by CLIPVisionModel/CLIPImageProcessor.from_pretrained, by
    /// <see cref="Load"/>, and by our inference ClipVisionTower via LlavaConfig.Load (original layout, --vision-tower).
    /// </summary>
    public void Save(string directory, double[]? imageMean = null, double[]? imageStd = null)
    {
        Directory.CreateDirectory(directory);
        var c = Config;
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"),
            parameters.Select(p => SafetensorsWriter.F32(p.Name, p.Shape.Select(d => (long)d).ToArray(), p.Data)),
            new Dictionary<string, string> { ["format"] = "pt" });

        var options = new JsonWriterOptions { Indented = true };
        using (var fs = File.Create(Path.Combine(directory, "config.json")))
        using (var w = new Utf8JsonWriter(fs, options))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures"); w.WriteStringValue("CLIPVisionModel"); w.WriteEndArray();
            w.WriteString("model_type", "clip");
            w.WriteNumber("initializer_factor", InitializerFactor);
            w.WriteString("torch_dtype", "float32");
            w.WriteStartObject("vision_config");
            w.WriteString("model_type", "clip_vision_model");
            w.WriteNumber("hidden_size", c.HiddenSize);
            w.WriteNumber("intermediate_size", c.IntermediateSize);
            w.WriteNumber("num_hidden_layers", c.NumLayers);
            w.WriteNumber("num_attention_heads", c.NumHeads);
            w.WriteNumber("num_channels", c.NumChannels);
            w.WriteNumber("image_size", c.ImageSize);
            w.WriteNumber("patch_size", c.PatchSize);
            w.WriteString("hidden_act", c.HiddenAct);
            w.WriteNumber("layer_norm_eps", (double)(decimal)c.LayerNormEps);
            w.WriteNumber("attention_dropout", 0.0);
            w.WriteNumber("initializer_range", (double)(decimal)InitializerRange);
            w.WriteNumber("initializer_factor", (double)(decimal)InitializerFactor);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        var mean = imageMean ?? ClipImageProcessorConfig.OpenAiClipMean;
        var std = imageStd ?? ClipImageProcessorConfig.OpenAiClipStd;
        if (mean.Length != c.NumChannels || std.Length != c.NumChannels) throw new ArgumentException($"image mean/std need {c.NumChannels} values");
        using (var fs = File.Create(Path.Combine(directory, "preprocessor_config.json")))
        using (var w = new Utf8JsonWriter(fs, options))
        {
            w.WriteStartObject();
            w.WriteStartObject("crop_size"); w.WriteNumber("height", c.ImageSize); w.WriteNumber("width", c.ImageSize); w.WriteEndObject();
            w.WriteBoolean("do_center_crop", true);
            w.WriteBoolean("do_convert_rgb", true);
            w.WriteBoolean("do_normalize", true);
            w.WriteBoolean("do_rescale", true);
            w.WriteBoolean("do_resize", true);
            w.WriteStartArray("image_mean"); foreach (var m in mean) w.WriteNumberValue(m); w.WriteEndArray();
            w.WriteString("image_processor_type", "CLIPImageProcessor");
            w.WriteStartArray("image_std"); foreach (var s in std) w.WriteNumberValue(s); w.WriteEndArray();
            w.WriteNumber("resample", 3);
            w.WriteNumber("rescale_factor", 1.0 / 255);
            w.WriteStartObject("size"); w.WriteNumber("shortest_edge", c.ImageSize); w.WriteEndObject();
            w.WriteEndObject();
        }
    }
}
