// Contract: a unit of parallel work over an index range; implemented by structs so dispatch allocates nothing.
namespace Llava.Tensors;

/// <summary>Work that can be split over item ranges. Implement on a struct; <see cref="Workers.Run"/> calls
/// <see cref="Execute"/> concurrently on disjoint ranges, so Execute must only write state owned by its range.</summary>
public interface IParallelJob
{
    /// <summary>Processes items [start, end).</summary>
    void Execute(int start, int end);
}
