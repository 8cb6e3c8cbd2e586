// The matmul kernels themselves (mmvq.cu and mmq.cu) run on the host through tests/emulate.h:
// each case's tokens go through the matrix-vector kernel 8 at a time and through the
// tensor-core kernel all at once, which must agree bit for bit and with Ward's CPU reference.
// Run by crates/kernels/tests/cuda_on_host.rs on the matmul cases of cases.h.
#define WARD_HOST
#include "emulate.h"
#include "../mmq.cu"
#include "../mmvq.cu"
#include "cases.h"

// The case's tokens through mmvq, 8 at a time, into y.
template <int TYPE> static void mmvq_by_8(const MatmulCase& c, float* y) {
    for (int t0 = 0; t0 < c.tokens; t0 += 8) {
        with_tokens(min(8, c.tokens - t0), [&]<int N>() {
            launch(dim3{(unsigned)c.rows}, MMVQ_THREADS, [&] {
                mmvq<TYPE, N>(c.w.data(), &c.x[(size_t)t0 * c.sub_blocks], y + (size_t)t0 * c.rows, c.sub_blocks,
                              c.row_bytes, c.rows);
            });
        });
    }
}

int main(int argc, char** argv) {
    FILE* f = open_cases(argc, argv);
    int cases = 0, failures = 0;
    MatmulCase c;
    while (read_matmul_case(f, &c)) {
        std::vector<float> small(c.want.size()), big(c.want.size());
        const bool known = with_type(c.type, [&]<int TYPE>() {
            mmvq_by_8<TYPE>(c, small.data());
            const dim3 grid{(unsigned)((c.rows + MMQ_ROWS - 1) / MMQ_ROWS), (unsigned)((c.tokens + MMQ_TOKENS - 1) / MMQ_TOKENS), 1};
            launch(grid, MMQ_THREADS,
                   [&] { mmq<TYPE>(c.w.data(), c.x.data(), big.data(), c.sub_blocks, c.row_bytes, c.rows, c.tokens); });
        });
        if (!known) { fprintf(stderr, "no kernels for ggml type %u\n", c.type); return 2; }
        for (size_t i = 0; i < c.want.size(); ++i) {
            const float tol = 1e-4f * c.magnitude[i] + 1e-6f;
            if (memcmp(&small[i], &big[i], 4) != 0 || !(fabsf(small[i] - c.want[i]) <= tol)) {
                if (failures < 10)
                    fprintf(stderr, "ggml type %u, %d×%d × %d tokens, output %zu: mmvq %.9g, mmq %.9g, reference %.9g\n",
                            c.type, c.rows, c.cols, c.tokens, i, small[i], big[i], c.want[i]);
                failures++;
            }
        }
        cases++;
    }
    printf("%d matmul cases checked (mmvq 8 tokens at a time = mmq bit for bit, both = the CPU), %d outputs wrong\n",
           cases, failures);
    return failures ? 1 : 0;
}
