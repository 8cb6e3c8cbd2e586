// Gated activations in place on the gate: g = act(g) · u (SwiGLU for Llama, GeGLU with
// tanh-approximated GELU for Gemma).
extern "C" __global__ void silu_mul_f32(float* __restrict__ g, const float* __restrict__ u, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

extern "C" __global__ void gelu_mul_f32(float* __restrict__ g, const float* __restrict__ u, long long n) {
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float v = g[i];
        const float inner = 0.7978845608f * (v + 0.044715f * v * v * v);
        g[i] = 0.5f * v * (1.0f + tanhf(inner)) * u[i];
    }
}
