// Rotary position embeddings in place on x laid out [token][head][head_dim], ggml's two
// layouts: interleaved pairs (x[2i], x[2i+1]) and halves (x[i], x[i + rope_dim/2]). Token t is
// at position pos[t]; theta_i = pos · freq_scale · base^(−2i/rope_dim). One thread per pair.
extern "C" __global__ void rope_f32(float* __restrict__ x, const int* __restrict__ pos, int tokens, int heads,
                                    int head_dim, int rope_dim, float base, float freq_scale, int halves) {
    const int pairs = rope_dim / 2;
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)tokens * heads * pairs) return;
    const int p = (int)(i % pairs);
    const long long th = i / pairs;  // token · heads + head
    const int t = (int)(th / heads);
    float* h = x + th * head_dim;
    const float theta = (float)pos[t] * freq_scale * powf(base, -2.0f * (float)p / (float)rope_dim);
    float s, c;
    sincosf(theta, &s, &c);
    const int a = halves ? p : 2 * p, b = halves ? p + pairs : 2 * p + 1;
    const float x0 = h[a], x1 = h[b];
    h[a] = x0 * c - x1 * s;
    h[b] = x0 * s + x1 * c;
}
