// Compile-only check (nothing runs): every CPU header of rcpu, with its public templates instantiated
// for float and double and its inline functions used, as a user's program would. CI compiles it with
// -O2 -march=x86-64-v4 -Wall -Wextra -Wpedantic -Werror whatever the machine, so that warnings that only
// appear with AVX-512 code generation (g++ 12's false -Wmaybe-uninitialized in its own intrinsics) are
// seen on machines without AVX-512 too.
#include <rcpu/rcpu.hpp>
#include <rcpu/io/ggml_quants.hpp>
#include <rcpu/io/gguf.hpp>
#include <rcpu/io/gguf_writer.hpp>
#include <rcpu/io/json.hpp>
#include <rcpu/io/npy.hpp>
#include <rcpu/io/spool_file.hpp>
#include <rcpu/io/staged_output.hpp>
#include <rcpu/io/statistics_io.hpp>
#include <rcpu/model/block_rotation.hpp>
#include <rcpu/model/bootstrap.hpp>
#include <rcpu/model/export.hpp>
#include <rcpu/model/gqa.hpp>
#include <rcpu/model/llama.hpp>
#include <rcpu/model/methods.hpp>
#include <rcpu/model/perplexity.hpp>
#include <rcpu/model/pipeline.hpp>
#include <rcpu/model/provenance.hpp>
#include <rcpu/model/streamed.hpp>
#include <rcpu/model/tokenizer.hpp>
#include <rcpu/model/zeroshot.hpp>
#include <rcpu/reference.hpp>

#include <iostream>
#include <string>
#include <vector>

template class rcpu::Statistics<float>;
template class rcpu::Statistics<double>;
template class rcpu::Statistics<float, float>;
template class rcpu::Procrustes<float>;
template class rcpu::Procrustes<double>;

namespace {

template <typename S>
void use_scalar(const std::string& path) {
  using Mat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;
  using RowMat = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Mat W = rcpu::io::load_npy_matrix<S>(path), X = rcpu::io::load_npy_matrix<S>(path);
  const RowMat Xr = X;
  rcpu::Statistics<S> st(W.cols());
  st.update(X);
  st.update(Xr);
  st.update(X.array().abs().matrix());
  st.update(Eigen::Map<const Mat>(X.data(), X.rows(), X.cols()));
  rcpu::Statistics<S> diag(W.cols(), rcpu::GramMode::diagonal, rcpu::GramPrecision::input_blocks);
  diag.update(X);
  st.merge(st);
  std::cout << st.covariance().sum() << rcpu::column_scores(W, st, rcpu::Score::rcpu).sum();
  std::cout << rcpu::unit_scores(W, st, rcpu::Score::flap, 2).sum();
  for (const rcpu::Compensation c : {rcpu::Compensation::none, rcpu::Compensation::bias, rcpu::Compensation::rotation,
                                     rcpu::Compensation::rotation_scale, rcpu::Compensation::rotation_bias,
                                     rcpu::Compensation::least_squares, rcpu::Compensation::proximal_ridge,
                                     rcpu::Compensation::rotation_ridge}) {
    rcpu::PruneOptions o = rcpu::PruneOptions::heads(2, 0.25);
    o.compensation = c;
    const auto p = rcpu::prune_layer(W, st, o);
    const auto q = rcpu::prune_layer(W, W.col(0), st, o);
    std::cout << p.report << q.weight.sum() << rcpu::take_rows(W, p.kept_columns).sum();
    std::cout << rcpu::compensate(W, st, p.kept_columns, c).weight.sum();
  }
  for (const rcpu::ProcrustesMethod m : {rcpu::ProcrustesMethod::automatic, rcpu::ProcrustesMethod::bdc_svd,
                                         rcpu::ProcrustesMethod::jacobi_svd, rcpu::ProcrustesMethod::lapack_gesdd,
                                         rcpu::ProcrustesMethod::polar_eig, rcpu::ProcrustesMethod::newton,
                                         rcpu::ProcrustesMethod::mixed}) {
    rcpu::Procrustes<S> pr(W.leftCols(W.rows()), {m, true});
    std::cout << pr.rotation().sum() << pr.rank() << pr.condition() << pr.scale(S(1));
    std::cout << rcpu::procrustes_rotation(W.leftCols(W.rows()), {m, false}).sum();
  }
  rcpu::io::save_npy(path, W);
  rcpu::io::save_npy_vector(path, W.col(0));
  rcpu::io::NpyReader r(path);
  std::cout << r.read_rows<S>(4).sum() << r.read_all<S>().sum();
  rcpu::io::save_statistics(path, st);
  std::cout << rcpu::io::load_statistics<S>(path).gram().sum();
}

}  // namespace

// Referenced so that every function is compiled; never called.
void rcpu_all_headers_use(const std::string& path) {
  use_scalar<float>(path);
  use_scalar<double>(path);
  const rcpu::io::GgufFile file = rcpu::io::GgufFile::open(path);
  const rcpu::model::Tokenizer tok = rcpu::model::Tokenizer::from_gguf(file);
  const rcpu::model::LlamaModel model = rcpu::model::LlamaModel::from_gguf(file);
  const std::vector<std::int32_t> ids = tok.encode(rcpu::model::wikitext_protocol_text(path));
  std::cout << tok.decode(ids) << model.logits(ids, 8).sum();
  std::cout << rcpu::model::perplexity(model, ids, {}).perplexity;
  rcpu::model::PipelineOptions po;
  const auto res = rcpu::model::prune_models(model, ids, {po}, &std::cerr);
  std::cout << res.front().parameters;
  std::cout << rcpu::model::block_procrustes(Eigen::MatrixXd::Identity(4, 4), 2).q.sum();
  const Eigen::MatrixXd W = Eigen::MatrixXd::Random(4, 8), X = Eigen::MatrixXd::Random(16, 8);
  std::cout << rcpu::reference::compensate(W, Eigen::VectorXd::Zero(4), X, {0, 1, 2}, rcpu::Compensation::rotation)
                   .weight.sum();
  rcpu::model::PipelineOptions mo = rcpu::model::method_options("rotation", 0.2);
  mo.round_to = 64;
  mo.statistics = rcpu::model::statistics_source_from_string(path);
  const auto pr = rcpu::model::prune_model(model, ids, mo);
  const std::vector<double> va(8, 1.0), vb(8, 0.5);
  std::cout << rcpu::model::to_string(rcpu::model::verdict(rcpu::model::paired_mean_difference(va, vb), true))
            << rcpu::model::stratified_mean_difference({{va, vb}}).lo << rcpu::model::perplexity_ratio(va, vb).hi;
  rcpu::model::ExportOptions eo;
  eo.metadata = rcpu::model::provenance(pr, {path, 1, 8, 0});
  for (const rcpu::io::GgmlType t : {rcpu::io::GgmlType::f32, rcpu::io::GgmlType::q8_0, rcpu::io::GgmlType::q4_0}) {
    eo.type = t;
    std::cout << rcpu::model::export_gguf(pr.model, &file, path, eo).file_bytes;
  }
  std::vector<std::uint8_t> qb(34);
  std::vector<float> qf(32);
  rcpu::io::quantize(rcpu::io::GgmlType::q8_0, qf.data(), 32, qb.data());
  rcpu::io::GgufWriter gw;
  gw.copy_metadata(file).add_vector("v", Eigen::VectorXf::Zero(4));
  std::cout << gw.to_bytes().size() << rcpu::model::method_name("flap")
            << rcpu::io::to_string(rcpu::io::ggml_type_from_string("q8_0", true));
  rcpu::model::check_exportable(pr.model, &file, eo);
  rcpu::io::StagedOutput out;
  (void)out.stage(path);
  out.publish();
  const auto task = rcpu::model::load_zeroshot_task("piqa", path, 10);
  std::cout << rcpu::model::evaluate_zeroshot(model, tok, task).paper_value()
            << rcpu::io::parse_json(path).size();
}
