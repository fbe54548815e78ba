using Llava.Formats;
using Llava.Tensors;

namespace Llava.Models.Loading;

/// <summary>What was loaded: tensor count, parameters and stored bytes per dtype.</summary>
public sealed record CheckpointSummary(int Tensors, long Parameters, long Bytes, IReadOnlyDictionary<DType, long> ParametersByDType, IReadOnlyList<string> Files)
{
    public static CheckpointSummary Of(IEnumerable<ITensorFile> files, params WeightReader[] readers)
    {
        var list = files.ToList();
        var byType = new Dictionary<DType, long>();
        long parameters = 0, bytes = 0;
        int count = 0;
        var seen = new HashSet<(string, string)>();
        foreach (var r in readers)
            foreach (var name in r.Used)
            {
                if (!seen.Add((r.Source, name))) continue;   // two readers over one file (e.g. projector and LM)
                var t = r.File.Get(name);
                count++;
                parameters += t.ElementCount;
                bytes += t.ByteLength;
                byType[t.DType] = byType.GetValueOrDefault(t.DType) + t.ElementCount;
            }
        return new CheckpointSummary(count, parameters, bytes, byType, list.Select(f => f.Source).Where(s => s.Length > 0).Distinct().ToList());
    }
}
