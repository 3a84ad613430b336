// Thin PyTorch binding of the fused logic-layer kernels in logic_layer_cpu.h (float32 and float64).
#include <torch/extension.h>

#include "logic_layer_cpu.h"

namespace {

void check(const torch::Tensor& x, const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& c) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous(), "x must be a contiguous CPU [in_dim, batch] tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat || x.scalar_type() == torch::kDouble, "x must be float32 or float64");
    TORCH_CHECK(c.scalar_type() == x.scalar_type() && c.dim() == 2 && c.size(1) == 4 && c.is_contiguous(),
                "c must be a contiguous [out_dim, 4] tensor of x's dtype");
    TORCH_CHECK(a.scalar_type() == torch::kLong && b.scalar_type() == torch::kLong && a.is_contiguous() &&
                    b.is_contiguous() && a.numel() == c.size(0) && b.numel() == c.size(0),
                "a and b must be contiguous int64 [out_dim] tensors");
    const int64_t n = x.size(0);
    if (a.numel()) {
        TORCH_CHECK(a.min().item<int64_t>() >= 0 && a.max().item<int64_t>() < n &&
                        b.min().item<int64_t>() >= 0 && b.max().item<int64_t>() < n,
                    "operand indices out of range 0..", n - 1);
    }
}

torch::Tensor forward(torch::Tensor x, torch::Tensor a, torch::Tensor b, torch::Tensor c, int64_t nthreads) {
    check(x, a, b, c);
    auto y = torch::empty({c.size(0), x.size(1)}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_logic_forward", [&] {
        lgc::logic_forward<scalar_t>(x.data_ptr<scalar_t>(), x.size(1), a.data_ptr<int64_t>(), b.data_ptr<int64_t>(),
                                     c.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), c.size(0), (int)nthreads);
    });
    return y;
}

std::vector<torch::Tensor> backward(torch::Tensor x, torch::Tensor a, torch::Tensor b, torch::Tensor c,
                                    torch::Tensor grad_y, bool need_grad_x, int64_t nthreads) {
    check(x, a, b, c);
    TORCH_CHECK(grad_y.scalar_type() == x.scalar_type() && grad_y.is_contiguous() && grad_y.dim() == 2 &&
                    grad_y.size(0) == c.size(0) && grad_y.size(1) == x.size(1),
                "grad_y must be a contiguous [out_dim, batch] tensor of x's dtype");
    auto grad_c = torch::empty_like(c);
    torch::Tensor grad_x = need_grad_x ? torch::empty_like(x) : torch::Tensor();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lgc_logic_backward", [&] {
        lgc::logic_backward<scalar_t>(x.data_ptr<scalar_t>(), x.size(0), x.size(1), a.data_ptr<int64_t>(),
                                      b.data_ptr<int64_t>(), c.data_ptr<scalar_t>(), grad_y.data_ptr<scalar_t>(),
                                      c.size(0), need_grad_x ? grad_x.data_ptr<scalar_t>() : nullptr,
                                      grad_c.data_ptr<scalar_t>(), (int)nthreads);
    });
    return {grad_x, grad_c};
}

void check_weights(const torch::Tensor& w, const torch::Tensor& relax) {
    TORCH_CHECK(w.device().is_cpu() && w.dim() == 2 && w.size(1) == 16 && w.is_contiguous(),
                "weights must be a contiguous CPU [out_dim, 16] tensor");
    TORCH_CHECK(w.scalar_type() == torch::kFloat || w.scalar_type() == torch::kDouble, "weights must be float32 or float64");
    TORCH_CHECK(relax.scalar_type() == w.scalar_type() && relax.is_contiguous() && relax.dim() == 2 &&
                    relax.size(0) == 16 && relax.size(1) == 4,
                "relax must be a contiguous [16, 4] tensor of the weights' dtype");
}

torch::Tensor coefficients(torch::Tensor w, torch::Tensor relax, int64_t nthreads) {
    check_weights(w, relax);
    auto c = torch::empty({w.size(0), 4}, w.options());
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "lgc_gate_coefficients", [&] {
        lgc::gate_coefficients<scalar_t>(w.data_ptr<scalar_t>(), relax.data_ptr<scalar_t>(), w.size(0),
                                         c.data_ptr<scalar_t>(), (int)nthreads);
    });
    return c;
}

torch::Tensor coefficients_backward(torch::Tensor w, torch::Tensor relax, torch::Tensor grad_c, int64_t nthreads) {
    check_weights(w, relax);
    TORCH_CHECK(grad_c.scalar_type() == w.scalar_type() && grad_c.is_contiguous() && grad_c.dim() == 2 &&
                    grad_c.size(0) == w.size(0) && grad_c.size(1) == 4,
                "grad_c must be a contiguous [out_dim, 4] tensor of the weights' dtype");
    auto grad_w = torch::empty_like(w);
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "lgc_gate_coefficients_backward", [&] {
        lgc::gate_coefficients_backward<scalar_t>(w.data_ptr<scalar_t>(), relax.data_ptr<scalar_t>(),
                                                  grad_c.data_ptr<scalar_t>(), w.size(0), grad_w.data_ptr<scalar_t>(),
                                                  (int)nthreads);
    });
    return grad_w;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &forward, "relaxed logic layer forward (feature-major)");
    m.def("coefficients", &coefficients, "softmax(w) @ relax, fused per gate");
    m.def("coefficients_backward", &coefficients_backward, "gradient of coefficients wrt the logits");
    m.def("backward", &backward, "relaxed logic layer backward: grad_x (or undefined), grad_c");
}
