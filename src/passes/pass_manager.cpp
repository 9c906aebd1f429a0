// The pass manager: runs passes by name, times each, drops the analyses a pass does not declare
// preserved, and in verify mode checks every declaration against what the pass really changed
// (fingerprints of graph, constants, plan and parameter store taken around the pass) and
// verifies the graph and the plan after it.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <string_view>

#include "edgequant/error.h"
#include "passes/pipeline.h"
#include "quant/plan_io.h"

namespace edgequant {

namespace {

size_t mix(size_t h, size_t v) { return h ^ (v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2)); }
size_t hash_bytes(const void* p, size_t n) {
  return std::hash<std::string_view>{}(std::string_view(static_cast<const char*>(p), n));
}
size_t hash_text(const std::string& s) { return std::hash<std::string>{}(s); }

size_t hash_attr(const Attribute& a) {
  return std::visit(
      [](const auto& x) -> size_t {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, float>)
          return hash_bytes(&x, sizeof x);
        else if constexpr (std::is_same_v<T, std::string>)
          return hash_text(x);
        else if constexpr (std::is_same_v<T, Tensor>)
          return hash_bytes(x.raw(), x.nbytes());
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          size_t h = x.size();
          for (const auto& s : x) h = mix(h, hash_text(s));
          return h;
        } else
          return hash_bytes(x.data(), x.size() * sizeof(x[0]));
      },
      a);
}

// One fingerprint per Part.
struct Fingerprints {
  size_t graph = 0, constants = 0, plan = 0, parameters = 0;
};

Fingerprints fingerprint(const QuantContext& ctx) {
  Fingerprints f;
  const Graph& g = *ctx.graph;
  size_t h = 0;
  for (const auto& op : g.ops()) {
    h = mix(h, hash_text(op->type + "/" + op->domain + "/" + op->name));
    for (const Value* v : op->inputs) h = mix(h, v ? hash_text(v->name) : 1);
    for (const Value* v : op->outputs) h = mix(h, v ? hash_text(v->name) : 1);
    for (const auto& [k, a] : op->attrs) h = mix(mix(h, hash_text(k)), hash_attr(a));
  }
  for (const Value* v : g.inputs) h = mix(h, hash_text(v->name));
  for (const Value* v : g.outputs) h = mix(h, hash_text(v->name));
  size_t c = 0;
  for (const auto& v : g.values()) {
    h = mix(h, hash_text(v->name));
    h = mix(h, static_cast<size_t>(v->dtype));
    if (v->shape)
      for (int64_t d : *v->shape) h = mix(h, static_cast<size_t>(d));
    if (v->is_constant()) c = mix(mix(c, hash_text(v->name)), hash_bytes(v->data->raw(), v->data->nbytes()));
  }
  f.graph = h;
  f.constants = c;
  f.plan = hash_text(quant::plan_to_json(ctx.plan).dump());
  const std::vector<at::Tensor> params = ctx.parameters.parameters();
  size_t p = params.size();
  for (const at::Tensor& t : params) {
    at::Tensor x = t.detach().contiguous();
    p = mix(p, hash_bytes(x.data_ptr(), x.nbytes()));
  }
  f.parameters = p;
  return f;
}

const char* part_name(Part p) {
  switch (p) {
    case Part::Graph:
      return "graph";
    case Part::Constants:
      return "constants";
    case Part::Plan:
      return "plan";
    case Part::Parameters:
      return "parameter store";
  }
  return "?";
}

const char* analysis_name(Analysis a) {
  switch (a) {
    case Analysis::Observations:
      return "observations";
    case Analysis::FloatOutputs:
      return "float kernels";
    case Analysis::ErrorReport:
      return "error report";
    case Analysis::LoweredForm:
      return "lowered form";
  }
  return "?";
}

// The parts each cached analysis is computed from. The float kernels hold the constants by
// reference, so their consistency with the constants is checked directly instead.
unsigned depends_on(Analysis a) {
  switch (a) {
    case Analysis::Observations:
      return Part::Graph | Part::Constants;
    case Analysis::FloatOutputs:
      return static_cast<unsigned>(Part::Graph);
    case Analysis::ErrorReport:
    case Analysis::LoweredForm:
      return Part::Graph | Part::Constants | Part::Plan | Part::Parameters;
  }
  return 0;
}

void check_declaration(QuantContext& ctx, const Pass& pass, const Fingerprints& before, unsigned preserved) {
  const Fingerprints after = fingerprint(ctx);
  unsigned changed = 0;
  if (after.graph != before.graph) changed |= static_cast<unsigned>(Part::Graph);
  if (after.constants != before.constants) changed |= static_cast<unsigned>(Part::Constants);
  if (after.plan != before.plan) changed |= static_cast<unsigned>(Part::Plan);
  if (after.parameters != before.parameters) changed |= static_cast<unsigned>(Part::Parameters);
  const PassDecl d = pass.declared();
  std::string who = std::string("pass '") + pass.name() + "'";
  for (Part p : {Part::Graph, Part::Constants, Part::Plan, Part::Parameters})
    if ((changed & static_cast<unsigned>(p)) && !(d.writes & static_cast<unsigned>(p)))
      fail(ErrorCode::Internal,
           who + " changed the " + part_name(p) + " but does not declare writing it (passes/pipeline.h)");
  for (Analysis a : {Analysis::Observations, Analysis::FloatOutputs, Analysis::ErrorReport, Analysis::LoweredForm}) {
    if (!(preserved & static_cast<unsigned>(a))) continue;
    for (Part p : {Part::Graph, Part::Constants, Part::Plan, Part::Parameters})
      if ((depends_on(a) & changed & static_cast<unsigned>(p)))
        fail(ErrorCode::Internal, who + " declares the " + analysis_name(a) + " preserved but changed the " +
                                      part_name(p) + " it is computed from");
  }
  if (preserved & static_cast<unsigned>(Analysis::FloatOutputs) && ctx.has_executor())
    for (const auto& v : ctx.graph->values()) {
      if (!v->is_constant() || v->data->dtype() != DType::Float32) continue;
      at::Tensor k = ctx.executor().constant(v.get());
      at::Tensor t = at::from_blob(const_cast<void*>(v->data->raw()), k.sizes(), at::kFloat);
      if (!at::equal(k, t))
        fail(ErrorCode::Internal, who + " declares the float kernels preserved but constant '" + v->name +
                                      "' differs between the graph and the executor");
    }
  ctx.graph->verify();
  if (!ctx.plan.values.empty()) ctx.plan.verify(*ctx.graph);
}

}  // namespace

Setting& QuantContext::edit_setting() {
  if (running_pass_)
    fail(ErrorCode::Internal, std::string("pass '") + running_pass_ +
                                  "' tried to change the setting (passes read it; see passes/pipeline.h)");
  return setting_;
}

bool QuantContext::verifying() const {
  if (verify_passes) return *verify_passes;
  if (const char* e = std::getenv("EDGEQUANT_VERIFY_PASSES")) return std::string(e) == "1";
#ifdef NDEBUG
  return false;
#else
  return true;
#endif
}

void run_pass(QuantContext& ctx, Pass& pass) {
  if (ctx.running_pass_)
    fail(ErrorCode::Internal, std::string("pass '") + ctx.running_pass_ + "' ran pass '" + pass.name() +
                                  "' itself (passes ask the context for analyses, they do not rerun the pipeline)");
  const bool verify = ctx.verifying();
  Fingerprints before;
  if (verify) before = fingerprint(ctx);
  auto t0 = std::chrono::steady_clock::now();
  ctx.running_pass_ = pass.name();
  try {
    PassResult r = pass.run(ctx);
    ctx.running_pass_ = nullptr;
    unsigned preserved = pass.declared().preserves & ~r.dropped;
    if (verify) check_declaration(ctx, pass, before, preserved);
    ctx.invalidate(preserved);
  } catch (Error& e) {
    ctx.running_pass_ = nullptr;
    throw e.add_context(std::string("pass '") + pass.name() + "'");
  } catch (const c10::Error& e) {
    ctx.running_pass_ = nullptr;
    std::string msg = e.what_without_backtrace();
    throw Error(ErrorCode::Internal, std::string("pass '") + pass.name() + "': " + msg.substr(0, msg.find('\n')));
  } catch (...) {
    ctx.running_pass_ = nullptr;
    throw;
  }
  ctx.stats.pass_seconds.push_back(
      {pass.name(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
}

void run_pipeline(QuantContext& ctx, const std::vector<std::string>& names, const std::string& from) {
  auto start = names.begin();
  if (!from.empty()) {
    start = std::find(names.begin(), names.end(), from);
    if (start == names.end()) fail(ErrorCode::InvalidSetting, "the pipeline has no pass '" + from + "' to resume from");
  }
  for (auto it = start; it != names.end(); ++it) {
    auto pass = make_pass(*it);
    run_pass(ctx, *pass);
  }
}

}  // namespace edgequant
