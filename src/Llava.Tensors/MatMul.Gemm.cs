// Contract: the tokens > 1 path: y (tokens x n) (+)= x (tokens x k) · Wᵀ, W (n x k) in F32/F16/BF16; multi-threaded over W row blocks.
namespace Llava.Tensors;

public static unsafe partial class MatMul
{
    // Simple first version: widen each W row once into scratch, reuse it for every token.
    static void Gemm(float* y, float* x, DType dtype, void* w, int n, int k, float* bias, int tokens, bool accumulate)
    {
        var job = new SimpleGemmJob { Y = y, X = x, W = new WeightMatrix(dtype, n, k, w), Bias = bias, Tokens = tokens, Accumulate = accumulate };
        Workers.Run(ref job, n, 4);
    }

    struct SimpleGemmJob : IParallelJob
    {
        public float* Y, X, Bias; public WeightMatrix W; public int Tokens; public bool Accumulate;
        public void Execute(int start, int end)
        {
            int n = W.Rows, k = W.Cols;
            var buf = Scratch.Get(0, k);
            fixed (float* row = buf)
                for (int o = start; o < end; o++)
                {
                    W.ReadRow(o, buf);
                    float b = Bias == null ? 0 : Bias[o];
                    for (int t = 0; t < Tokens; t++)
                    {
                        float s = VecOps.Dot(X + (long)t * k, row, k);
                        float* dst = Y + (long)t * n + o;
                        *dst = Accumulate ? *dst + s : s + b;
                    }
                }
        }
    }
}
