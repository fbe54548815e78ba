using System.Diagnostics;
using System.Text;
using Llava.Generation;
using Llava.Models.Llava;
using Llava.Text;
using Llava.Vision;

namespace Llava.Cli;

/// <summary>What one answer cost.</summary>
internal sealed record TurnResult(string Text, int PromptTokens, int PrefillTokens, int CompletionTokens, double PrefillSeconds, double DecodeSeconds, FinishReason Finish);

/// <summary>
/// A conversation driven turn by turn: the template renders the whole history each turn (as LLaVA's CLI does),
/// and the session recomputes only what the KV cache does not already hold.
/// </summary>
internal sealed class ChatTurns
{
    readonly LlavaSession session;
    readonly PromptFormat format;
    readonly GenerationOptions options;
    readonly ImageAspectMode? aspect;
    ImageFeatures? image;
    bool imagePending;

    public ChatTurns(LlavaSession session, PromptFormat format, GenerationOptions options, ImageAspectMode? aspect)
    {
        this.session = session;
        this.format = format.Fresh();
        this.options = options with { StopStrings = format.StopStrings };
        this.aspect = aspect;
    }

    public void SetImage(RgbImage img)
    {
        image = session.EncodeImage(img, aspect);
        imagePending = true;
    }

    public TurnResult Ask(string question, TextWriter? stream, CancellationToken ct)
    {
        // The first user turn carries the image, as "<image>\n" + text (LLaVA's cli.py).
        format.AddUser(question, imagePending);
        imagePending = false;
        var ids = session.Tokenize(format.Render());
        var images = image is null || !ids.Contains(session.Model.Config.ImageTokenIndex) ? new List<ImageFeatures>() : new List<ImageFeatures> { image };

        var sw = Stopwatch.StartNew();
        session.Prefill(ids, images);
        double prefill = sw.Elapsed.TotalSeconds;
        int computed = session.LastPrefillComputed;
        sw.Restart();
        var answer = new StringBuilder();
        int count = 0;
        var finish = FinishReason.None;
        foreach (var t in session.Generate(options, ct))
        {
            if (t.Id >= 0) count++;
            answer.Append(t.Text);
            stream?.Write(t.Text);
            stream?.Flush();
            finish = t.Finish;
        }
        double decode = sw.Elapsed.TotalSeconds;
        string reply = answer.ToString().Trim();
        format.AddAnswer(reply);
        int promptTokens = ids.Length - images.Count + images.Sum(i => i.Rows);
        return new TurnResult(reply, promptTokens, computed, count, prefill, decode, finish);
    }
}
