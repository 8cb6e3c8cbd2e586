// Small element-wise kernels of a forward pass: the residual add and scaling (Gemma's
// embeddings).
extern "C" __global__ void add_f32(float* __restrict__ a, const float* __restrict__ b, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) a[i] += b[i];
}

extern "C" __global__ void scale_f32(float* __restrict__ x, float s, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}
