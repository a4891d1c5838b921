// CPU kernels: one pass over the tensor, rows split across threads with at::parallel_for.
// The row loops work in opmath precision (float for half and bfloat16) and are written so that
// the compiler vectorises them: a compile-time pixel width (1 for NCHW, 3 for RGB
// channels_last) turns the inner loop into straight-line code.

#include "../npr.h"
#include "../npr_rule.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace npr_cuda {
namespace {

template <typename scalar_t>
using opmath_t = at::opmath_type<scalar_t>;

// out[c] = src[c] - anchor_row[anchor column of c], for one row of `width` pixels of `inner`
// elements. For an even row, anchor_row == src.
template <typename scalar_t, int64_t kInner>
void forward_row(const opmath_t<scalar_t>* src, const opmath_t<scalar_t>* anchor_row,
                 opmath_t<scalar_t>* __restrict__ out, int64_t width, int64_t runtime_inner) {
  using compute_t = opmath_t<scalar_t>;
  const int64_t inner = kInner > 0 ? kInner : runtime_inner;
  const int64_t pairs = width / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t c = 2 * p * inner;
    for (int64_t i = 0; i < inner; ++i) {
      const compute_t anchor = anchor_row[c + i];
      out[c + i] = residual<compute_t>(src[c + i], anchor);
      out[c + inner + i] = residual<compute_t>(src[c + inner + i], anchor);
    }
  }
  if (width % 2 != 0) {  // trailing partial block: its own top-left pixel is the anchor
    const int64_t c = 2 * pairs * inner;
    for (int64_t i = 0; i < inner; ++i) {
      out[c + i] = residual<compute_t>(src[c + i], anchor_row[c + i]);
    }
  }
}

// An even row h of the input gradient: each anchor gets g minus its block's sum, every other
// pixel keeps g. `below` is row h + 1, or null when h is the last row.
template <typename scalar_t, int64_t kInner, bool kHasBelow>
void backward_anchor_row(const opmath_t<scalar_t>* g, const opmath_t<scalar_t>* below,
                         opmath_t<scalar_t>* __restrict__ out, int64_t width,
                         int64_t runtime_inner) {
  using compute_t = opmath_t<scalar_t>;
  const int64_t inner = kInner > 0 ? kInner : runtime_inner;
  const int64_t pairs = width / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t c = 2 * p * inner;
    for (int64_t i = 0; i < inner; ++i) {
      compute_t sum = g[c + i] + g[c + inner + i];
      if constexpr (kHasBelow) {
        sum += below[c + i];
        sum += below[c + inner + i];
      }
      out[c + i] = anchor_gradient<scalar_t>(g[c + i], sum);
      out[c + inner + i] = g[c + inner + i];
    }
  }
  if (width % 2 != 0) {
    const int64_t c = 2 * pairs * inner;
    for (int64_t i = 0; i < inner; ++i) {
      compute_t sum = g[c + i];
      if constexpr (kHasBelow) {
        sum += below[c + i];
      }
      out[c + i] = anchor_gradient<scalar_t>(g[c + i], sum);
    }
  }
}

// Calls body(std::integral_constant<int64_t, kInner>) with the pixel width as a compile-time
// constant where it is a common one, and kInner = 0 (read it at run time) otherwise.
template <typename Body>
void with_static_inner(int64_t inner, const Body& body) {
  if (inner == 1) {
    body(std::integral_constant<int64_t, 1>{});
  } else if (inner == 3) {
    body(std::integral_constant<int64_t, 3>{});
  } else {
    body(std::integral_constant<int64_t, 0>{});
  }
}

// Where the row kernels read and write. float and double rows are used in place.
template <typename scalar_t, typename = void>
struct RowStaging {
  explicit RowStaging(int64_t /*row_length*/) {}
  const scalar_t* widen(int /*slot*/, const scalar_t* row) const { return row; }
  scalar_t* output(scalar_t* row) const { return row; }
  void commit(scalar_t* /*row*/) const {}
};

// Half and bfloat16 rows are widened to float, run through the row kernels and rounded back
// once: the values of residual<scalar_t>() and anchor_gradient<scalar_t>() (float arithmetic,
// one rounding), in plain loops that the compiler vectorises.
template <typename scalar_t>
struct RowStaging<scalar_t, std::enable_if_t<std::is_same_v<scalar_t, c10::Half> ||
                                             std::is_same_v<scalar_t, c10::BFloat16>>> {
  explicit RowStaging(int64_t row_length) : length(row_length), buffer(3 * row_length) {}
  const float* widen(int slot, const scalar_t* row) {
    float* wide = buffer.data() + slot * length;
    for (int64_t i = 0; i < length; ++i) {
      wide[i] = static_cast<float>(row[i]);
    }
    return wide;
  }
  float* output(scalar_t* /*row*/) { return buffer.data() + 2 * length; }
  void commit(scalar_t* row) {
    const float* wide = buffer.data() + 2 * length;
    for (int64_t i = 0; i < length; ++i) {
      row[i] = static_cast<scalar_t>(wide[i]);
    }
  }

  int64_t length;
  std::vector<float> buffer;  // two input rows and one output row
};

// Elements below which a task is not worth a thread (ATen's GRAIN_SIZE).
constexpr int64_t kElementsPerTask = 32768;

// Runs row_body(row, h, staging) over all planes * height rows, in parallel tasks of at least
// kElementsPerTask elements, each task with its own staging buffers.
template <typename scalar_t, typename RowBody>
void for_each_row(const PlaneLayout& layout, const RowBody& row_body) {
  const int64_t rows = layout.planes * layout.height;
  const int64_t grain = std::max<int64_t>(1, kElementsPerTask / layout.row_length());
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    RowStaging<scalar_t> staging(layout.row_length());
    for (int64_t row = begin; row < end; ++row) {
      row_body(row, row % layout.height, staging);
    }
  });
}

at::Tensor npr_cpu(const at::Tensor& x) {
  PlaneLayout layout = prepare_planes(x, "npr");
  if (layout.output.numel() == 0) {
    return layout.output;
  }
  const int64_t row_length = layout.row_length();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "npr_cpu", [&] {
    const scalar_t* in = layout.input.const_data_ptr<scalar_t>();
    scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();
    with_static_inner(layout.inner, [&](auto static_inner) {
      constexpr int64_t kInner = decltype(static_inner)::value;
      for_each_row<scalar_t>(layout, [&](int64_t row, int64_t h, auto& staging) {
        const auto* src = staging.widen(0, in + row * row_length);
        const auto* anchors =
            h == anchor_index(h) ? src : staging.widen(1, in + (row - 1) * row_length);
        forward_row<scalar_t, kInner>(src, anchors, staging.output(out + row * row_length),
                                      layout.width, layout.inner);
        staging.commit(out + row * row_length);
      });
    });
  });
  return layout.output;
}

at::Tensor npr_backward_cpu(const at::Tensor& grad) {
  PlaneLayout layout = prepare_planes(grad, "npr_backward");
  if (layout.output.numel() == 0) {
    return layout.output;
  }
  const int64_t row_length = layout.row_length();
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad.scalar_type(), "npr_backward_cpu", [&] {
        const scalar_t* g = layout.input.const_data_ptr<scalar_t>();
        scalar_t* out = layout.output.mutable_data_ptr<scalar_t>();
        with_static_inner(layout.inner, [&](auto static_inner) {
          constexpr int64_t kInner = decltype(static_inner)::value;
          for_each_row<scalar_t>(layout, [&](int64_t row, int64_t h, auto& staging) {
            const scalar_t* g_row = g + row * row_length;
            scalar_t* out_row = out + row * row_length;
            if (h != anchor_index(h)) {  // no anchors in an odd row: its gradient passes through
              std::memcpy(out_row, g_row, row_length * sizeof(scalar_t));
              return;
            }
            const auto* g_wide = staging.widen(0, g_row);
            auto* out_wide = staging.output(out_row);
            if (h + 1 < layout.height) {
              backward_anchor_row<scalar_t, kInner, true>(
                  g_wide, staging.widen(1, g_row + row_length), out_wide, layout.width,
                  layout.inner);
            } else {
              backward_anchor_row<scalar_t, kInner, false>(g_wide, nullptr, out_wide,
                                                           layout.width, layout.inner);
            }
            staging.commit(out_row);
          });
        });
      });
  return layout.output;
}

}  // namespace

TORCH_LIBRARY_IMPL(npr_cuda, CPU, m) {
  m.impl("npr", &npr_cpu);
  m.impl("npr_backward", &npr_backward_cpu);
}

}  // namespace npr_cuda
