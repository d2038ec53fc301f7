// A LLaMA model with random weights of a given configuration, for the model tests (test_llama.cpp,
// test_export.cpp): norms near 1, linear layers of moderate scale, dense bookkeeping.
#ifndef RCPU_TESTS_MODEL_RANDOM_LLAMA_HPP
#define RCPU_TESTS_MODEL_RANDOM_LLAMA_HPP

#include <cstdint>
#include <vector>

#include <rcpu/model/llama.hpp>

#include "support.hpp"

namespace rcpu_test {

inline rcpu::model::LlamaModel random_llama(const rcpu::model::LlamaConfig& c, std::uint32_t seed, bool tied) {
  using rcpu::Index;
  Rng rng(seed);
  const auto m = [&](Index r, Index cc, double sd) { return rng.normal<float>(r, cc, sd); };
  std::vector<rcpu::model::LlamaLayer> layers;
  for (Index l = 0; l < c.n_layers; ++l) {
    rcpu::model::LlamaLayer L;
    L.head_dim = c.head_dim;
    L.attn_norm = (1.0f + m(c.d_model, 1, 0.2).array()).matrix();
    L.ffn_norm = (1.0f + m(c.d_model, 1, 0.2).array()).matrix();
    L.wq = m(c.n_heads * c.head_dim, c.d_model, 0.5);
    L.wk = m(c.n_kv_heads * c.head_dim, c.d_model, 0.5);
    L.wv = m(c.n_kv_heads * c.head_dim, c.d_model, 0.5);
    L.wo = m(c.d_model, c.n_heads * c.head_dim, 0.3);
    L.w_gate = m(c.ffn, c.d_model, 0.4);
    L.w_up = m(c.ffn, c.d_model, 0.4);
    L.w_down = m(c.d_model, c.ffn, 0.3);
    rcpu::model::LlamaModel::dense_bookkeeping(L, c);
    layers.push_back(L);
  }
  return rcpu::model::LlamaModel::from_weights(c, m(c.vocab, c.d_model, 1.0), layers,
                                               (1.0f + m(c.d_model, 1, 0.1).array()).matrix(),
                                               tied ? Eigen::MatrixXf() : m(c.vocab, c.d_model, 0.5));
}

}  // namespace rcpu_test

#endif  // RCPU_TESTS_MODEL_RANDOM_LLAMA_HPP
