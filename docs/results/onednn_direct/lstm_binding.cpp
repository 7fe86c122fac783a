// oneDNN's LSTM primitive (forward_training + backward), called without PyTorch's wrapper.
// A C ABI for ctypes: run.py builds this file with g++ against a oneDNN wheel and compares it
// with nn.LSTM. Layouts: x, y (T, B, C/H) time-major; forward weights ldigo (C, 4, H); backward
// weights ldgoi (PyTorch's (4H, C) as it is); weight gradients ldigo; bias ldgo (4, H).
#include <oneapi/dnnl/dnnl.hpp>

#include <cstdio>
#include <cstring>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

struct Handle {
  engine eng{engine::kind::cpu, 0};
  stream s{eng};
  lstm_forward::primitive_desc fpd;
  lstm_backward::primitive_desc bpd;
  lstm_forward f;
  lstm_backward b;
  memory::desc src, dst, st, w_gi, w_hh_gi, w_ig, w_hh_ig, bias, ws;
};

extern "C" {

// Primitives for T steps of B reviews, C inputs, H units; the workspace size in bytes, and the
// implementations oneDNN picked ("fwd_impl bwd_impl") into `impl` (up to `impl_len` chars).
void* lb_create(int T, int B, int C, int H, long* ws_bytes, char* impl, int impl_len) {
  try {
    auto* h = new Handle();
    const int L = 1, D = 1, G = 4;
    h->src = memory::desc({T, B, C}, dt::f32, tag::tnc);
    h->dst = memory::desc({T, B, H}, dt::f32, tag::tnc);
    h->st = memory::desc({L, D, B, H}, dt::f32, tag::ldnc);
    h->w_gi = memory::desc({L, D, C, G, H}, dt::f32, tag::ldgoi);
    h->w_hh_gi = memory::desc({L, D, H, G, H}, dt::f32, tag::ldgoi);
    h->w_ig = memory::desc({L, D, C, G, H}, dt::f32, tag::ldigo);
    h->w_hh_ig = memory::desc({L, D, H, G, H}, dt::f32, tag::ldigo);
    h->bias = memory::desc({L, D, G, H}, dt::f32, tag::ldgo);
    h->fpd = lstm_forward::primitive_desc(h->eng, prop_kind::forward_training,
        rnn_direction::unidirectional_left2right, h->src, h->st, h->st, h->w_ig, h->w_hh_ig, h->bias,
        h->dst, h->st, h->st);
    h->bpd = lstm_backward::primitive_desc(h->eng, prop_kind::backward,
        rnn_direction::unidirectional_left2right, h->src, h->st, h->st, h->w_gi, h->w_hh_gi, h->bias,
        h->dst, h->st, h->st, h->src, h->st, h->st, h->w_ig, h->w_hh_ig, h->bias, h->dst, h->st, h->st,
        h->fpd);
    h->f = lstm_forward(h->fpd);
    h->b = lstm_backward(h->bpd);
    h->ws = h->fpd.workspace_desc();
    *ws_bytes = (long)h->ws.get_size();
    snprintf(impl, impl_len, "%s %s", h->fpd.impl_info_str(), h->bpd.impl_info_str());
    return h;
  } catch (dnnl::error& e) {
    fprintf(stderr, "lstm_binding: %s\n", e.what());
    return nullptr;
  }
}

void lb_forward(void* hp, void* x, void* h0, void* c0, void* w_ig, void* w_hh_ig, void* bias, void* y,
                void* hT, void* cT, void* ws) {
  auto* h = (Handle*)hp;
  auto m = [&](const memory::desc& d, void* p) { return memory(d, h->eng, p); };
  h->f.execute(h->s, {{DNNL_ARG_SRC_LAYER, m(h->src, x)}, {DNNL_ARG_SRC_ITER, m(h->st, h0)},
                      {DNNL_ARG_SRC_ITER_C, m(h->st, c0)}, {DNNL_ARG_WEIGHTS_LAYER, m(h->w_ig, w_ig)},
                      {DNNL_ARG_WEIGHTS_ITER, m(h->w_hh_ig, w_hh_ig)}, {DNNL_ARG_BIAS, m(h->bias, bias)},
                      {DNNL_ARG_DST_LAYER, m(h->dst, y)}, {DNNL_ARG_DST_ITER, m(h->st, hT)},
                      {DNNL_ARG_DST_ITER_C, m(h->st, cT)}, {DNNL_ARG_WORKSPACE, m(h->ws, ws)}});
  h->s.wait();
}

// oneDNN accumulates into the weight and bias gradients: the caller passes them zeroed.
void lb_backward(void* hp, void* x, void* h0, void* c0, void* w_gi, void* w_hh_gi, void* bias, void* y,
                 void* hT, void* cT, void* ws, void* dy, void* dhT, void* dcT, void* dx, void* dh0,
                 void* dc0, void* dw_ig, void* dw_hh_ig, void* dbias) {
  auto* h = (Handle*)hp;
  auto m = [&](const memory::desc& d, void* p) { return memory(d, h->eng, p); };
  h->b.execute(h->s, {{DNNL_ARG_SRC_LAYER, m(h->src, x)}, {DNNL_ARG_SRC_ITER, m(h->st, h0)},
                      {DNNL_ARG_SRC_ITER_C, m(h->st, c0)}, {DNNL_ARG_WEIGHTS_LAYER, m(h->w_gi, w_gi)},
                      {DNNL_ARG_WEIGHTS_ITER, m(h->w_hh_gi, w_hh_gi)}, {DNNL_ARG_BIAS, m(h->bias, bias)},
                      {DNNL_ARG_DST_LAYER, m(h->dst, y)}, {DNNL_ARG_DST_ITER, m(h->st, hT)},
                      {DNNL_ARG_DST_ITER_C, m(h->st, cT)}, {DNNL_ARG_WORKSPACE, m(h->ws, ws)},
                      {DNNL_ARG_DIFF_DST_LAYER, m(h->dst, dy)}, {DNNL_ARG_DIFF_DST_ITER, m(h->st, dhT)},
                      {DNNL_ARG_DIFF_DST_ITER_C, m(h->st, dcT)}, {DNNL_ARG_DIFF_SRC_LAYER, m(h->src, dx)},
                      {DNNL_ARG_DIFF_SRC_ITER, m(h->st, dh0)}, {DNNL_ARG_DIFF_SRC_ITER_C, m(h->st, dc0)},
                      {DNNL_ARG_DIFF_WEIGHTS_LAYER, m(h->w_ig, dw_ig)},
                      {DNNL_ARG_DIFF_WEIGHTS_ITER, m(h->w_hh_ig, dw_hh_ig)},
                      {DNNL_ARG_DIFF_BIAS, m(h->bias, dbias)}});
  h->s.wait();
}

// The implementation oneDNN picks for a forward pass with weights in any layout it likes
// (training != 0: forward_training, else forward_inference).
void lb_any_layout_impl(int T, int B, int C, int H, int training, char* impl, int impl_len) {
  engine eng(engine::kind::cpu, 0);
  memory::desc src({T, B, C}, dt::f32, tag::tnc), dst({T, B, H}, dt::f32, tag::tnc);
  memory::desc st({1, 1, B, H}, dt::f32, tag::ldnc), bias({1, 1, 4, H}, dt::f32, tag::ldgo);
  memory::desc wl({1, 1, C, 4, H}, dt::f32, tag::any), wi({1, 1, H, 4, H}, dt::f32, tag::any);
  auto pd = lstm_forward::primitive_desc(eng, training ? prop_kind::forward_training : prop_kind::forward_inference,
      rnn_direction::unidirectional_left2right, src, st, st, wl, wi, bias, dst, st, st);
  snprintf(impl, impl_len, "%s", pd.impl_info_str());
}
}
