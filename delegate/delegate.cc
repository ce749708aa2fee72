// TFLite delegate plugin entry points and the secure plan runner.
//
// Security invariant: a tensor is secret if it is a graph input (the data
// owner's), a constant consumed by a secure kernel (the model owner's), or an
// output of a claimed node. Every node that reads a secret tensor's data is
// claimed; if no secure kernel exists for it the model is refused, naming the
// op and node. Only SHAPE (which reads dimensions, never data) and nodes on
// public data stay with TFLite. Values cross from one partition to the next
// as shares inside the plan, never through TFLite tensors.
#include "delegate/delegate.h"

#include <dlfcn.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>

#include "delegate/registry.h"
#include "mpc/stats.h"

#define TFLITE_MPC_EXPORT extern "C" __attribute__((visibility("default")))

namespace tflite_mpc {

namespace {

// Process-lifetime state, deliberately never destroyed: a plan owns party threads
// and buffers that must not be torn down during static destruction at exit.
std::mutex& g_mutex() {
  static auto* m = new std::mutex;
  return *m;
}
#define g_mu g_mutex()
std::string& g_last_error_ref() {
  static auto* s = new std::string;
  return *s;
}
#define g_last_error g_last_error_ref()
std::set<MpcDelegate*>& g_live_ref() {
  static auto* s = new std::set<MpcDelegate*>;
  return *s;
}
#define g_live g_live_ref()
// A copy of the last inference's report (the plan itself, with its session and
// weight shares, ends with its delegate).
std::unique_ptr<Report>& g_last_report_ref() {
  static auto* p = new std::unique_ptr<Report>;
  return *p;
}
#define g_last_report g_last_report_ref()

std::vector<NodeCheck>& g_last_check_ref() {
  static auto* v = new std::vector<NodeCheck>;
  return *v;
}

void set_last_error(const std::string& e) {
  std::lock_guard<std::mutex> g(g_mu);
  g_last_error = e;
}

// TFLite glues consecutive reports together: end each with a newline.
void report(TfLiteContext* ctx, const std::string& msg) {
  set_last_error(msg);
  if (ctx && ctx->ReportError) ctx->ReportError(ctx, "%s\n", msg.c_str());
}

std::string sha256_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr) != 1) throw mpc::Error("SHA-256 failed");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

// Opens `x` to every recipient; a recipient keeps its value in *out.
// `to` holds distinct party ids (validated when the options are parsed).
void reveal_to_recipients(mpc::Protocol& p, const Share& x, const std::vector<int>& to, Vec* out) {
  if (to == std::vector<int>{0, 1, 2}) {
    *out = p.reveal(x, -1);
    return;
  }
  for (int r : to) {
    Vec v = p.reveal(x, r);
    if (p.party() == r) *out = std::move(v);
  }
}

// Cost of what a party did since `before` / `t0`.
mpc::OpCost cost_since(mpc::Stats& stats, const mpc::OpCost& before, double t0) {
  mpc::OpCost d = stats.total();
  d.bytes_sent -= before.bytes_sent;
  d.bytes_recv -= before.bytes_recv;
  d.rounds -= before.rounds;
  d.depth -= before.depth;
  d.calls = 1;
  d.seconds = mpc::now_seconds() - t0;
  return d;
}

bool is_constant(TfLiteContext* ctx, int t) {
  const TfLiteTensor& ten = ctx->tensors[t];
  return ten.allocation_type == kTfLiteMmapRo || ten.allocation_type == kTfLitePersistentRo;
}

std::string node_label(int node, int code) {
  return std::string("node ") + std::to_string(node) + " (" + builtin_name(code) + ")";
}

Vec encode_q8_tensor(const TfLiteTensor& t, size_t n) {
  Vec v(n);
  if (t.type == kTfLiteInt8) {
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint64_t>(static_cast<int64_t>(t.data.int8[i]));
  } else if (t.type == kTfLiteUInt8) {
    for (size_t i = 0; i < n; ++i) v[i] = t.data.uint8[i];
  } else {
    throw ArgError(std::string("input tensor '") + (t.name ? t.name : "?") +
                   "' must be int8 or uint8 (or float32 with a QUANTIZE edge)");
  }
  return v;
}

// A revealed secure output into its TFLite tensor: 8-bit quantized values, or the int32 /
// int64 indices of ARG_MAX / ARG_MIN.
void write_output(TfLiteTensor& ten, int t, const Vec& v) {
  const size_t n = v.size();
  const size_t width = ten.type == kTfLiteInt8 || ten.type == kTfLiteUInt8 ? 1
                       : ten.type == kTfLiteInt32                          ? 4
                       : ten.type == kTfLiteInt64                          ? 8
                                                                           : 0;
  if (width == 0)
    throw mpc::Error("output tensor " + std::to_string(t) + " must be int8, uint8, int32, int64 or a DEQUANTIZE output");
  if (!ten.data.raw || ten.bytes < n * width)
    throw mpc::Error("output tensor " + std::to_string(t) + " has no buffer of the revealed size");
  for (size_t i = 0; i < n; ++i) {
    const int64_t x = static_cast<int64_t>(v[i]);
    switch (ten.type) {
      case kTfLiteInt8: ten.data.int8[i] = static_cast<int8_t>(x); break;
      case kTfLiteUInt8: ten.data.uint8[i] = static_cast<uint8_t>(x); break;
      case kTfLiteInt32: ten.data.i32[i] = static_cast<int32_t>(x); break;
      default: ten.data.i64[i] = x; break;
    }
  }
}

// What leaves the plan for a declared output: its values, or with output=argmax only
// the secret index of each row's maximum.
Share revealed_value(mpc::Protocol& p, const Plan& P, const Share& x) {
  if (!P.opt.output_argmax) return x;
  return arg_best_rows(p, x, P.argmax_rows, P.argmax_len, false, 10);
}

// output=argmax: the output tensor is a one-hot of each row's argmax (float: 0 and 1;
// 8-bit: the type's minimum and maximum), so np.argmax(output, -1) is the class; the
// indices also go to the report (tflite_mpc.argmax(delegate)).
void write_argmax(TfLiteTensor& ten, bool is_float, const Vec& idx, Plan& P) {
  const int64_t rows = P.argmax_rows, len = P.argmax_len;
  if (static_cast<int64_t>(idx.size()) != rows) throw mpc::Error("internal: argmax has the wrong size");
  const bool u8 = ten.type == kTfLiteUInt8;
  const size_t width = is_float ? 4 : 1;
  if (!ten.data.raw || ten.bytes < static_cast<size_t>(rows * len) * width)
    throw mpc::Error("output tensor has no buffer of the model's size");
  P.last.argmax.assign(rows, 0);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t k = static_cast<int64_t>(idx[r]);
    if (k < 0 || k >= len) throw mpc::Error("internal: argmax index out of range");
    P.last.argmax[r] = k;
    for (int64_t j = 0; j < len; ++j) {
      const bool hot = j == k;
      if (is_float) ten.data.f[r * len + j] = hot ? 1.f : 0.f;
      else if (u8) ten.data.uint8[r * len + j] = hot ? 255 : 0;
      else ten.data.int8[r * len + j] = hot ? 127 : -128;
    }
  }
}

struct Partition {
  std::shared_ptr<Plan> plan;
  std::vector<int> nodes;     // plan order
  std::vector<int> reveal;    // graph outputs of this partition (int8 tensors revealed)
  std::vector<int> hidden;    // outputs consumed elsewhere: their TFLite buffers get zeros
  bool first = false;         // contains the first claimed node: starts a new report
};

// ------------------------------------------------------------------ plan construction
// The interpreter's declared outputs produced by nodes. The C API has no direct
// accessor: a dry-run partition of every node into one delegate partition lists,
// as that partition's outputs, exactly the graph outputs (a tensor crossing to a
// second partition would also be listed, so with several partitions only tensors
// no other partition reads count). Graph outputs that are graph inputs or
// constants are not produced by any node and are never listed: the delegate
// reveals nothing for them.
std::set<int> declared_outputs(TfLiteContext* ctx, const std::vector<int>& order,
                               const std::vector<std::vector<int>>& readers) {
  std::set<int> out;
  if (order.empty()) return out;
  if (!ctx->PreviewDelegatePartitioning)
    throw mpc::Error("this TFLite runtime cannot list the graph outputs (no PreviewDelegatePartitioning)");
  std::vector<int> arr(1 + order.size());
  arr[0] = static_cast<int>(order.size());
  std::copy(order.begin(), order.end(), arr.begin() + 1);
  TfLiteDelegateParams* parts = nullptr;
  int n = 0;
  if (ctx->PreviewDelegatePartitioning(ctx, reinterpret_cast<TfLiteIntArray*>(arr.data()), &parts, &n) != kTfLiteOk)
    throw mpc::Error("cannot read the graph outputs (PreviewDelegatePartitioning failed)");
  for (int i = 0; i < n; ++i) {
    std::set<int> mine(parts[i].nodes_to_replace->data, parts[i].nodes_to_replace->data + parts[i].nodes_to_replace->size);
    for (int k = 0; k < parts[i].output_tensors->size; ++k) {
      const int t = parts[i].output_tensors->data[k];
      bool read_elsewhere = false;
      for (int r : readers[t]) read_elsewhere |= !mine.count(r);
      if (n == 1 || !read_elsewhere) out.insert(t);
    }
  }
  return out;
}

// Exact text of a float (hash input): its bits.
std::string float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return std::to_string(u);
}

// The public graph, for the hash every party compares before a distributed
// session: every node (op, version, parameters, input and output tensor indices),
// every tensor (type, shape, quantization, constant / variable, and the values of
// public integer constants: shapes, axes), the graph inputs and outputs. Weight and
// bias values never enter it: the model owner's model and the public (stripped)
// model hash the same.
std::string public_graph(TfLiteContext* ctx, const std::vector<int>& order,
                         const std::vector<std::pair<TfLiteNode*, TfLiteRegistration*>>& nodes,
                         const std::set<int>& secret_constants, const std::vector<int>& graph_inputs,
                         const std::set<int>& graph_outputs) {
  std::ostringstream o;
  o << "tflite-mpc graph v2\n";
  for (size_t pos = 0; pos < order.size(); ++pos) {
    TfLiteNode* node = nodes[pos].first;
    TfLiteRegistration* reg = nodes[pos].second;
    o << "node " << order[pos] << " " << public_signature(NodeView{ctx, node, reg, order[pos]});
    if (reg->custom_name) o << " custom=" << reg->custom_name;
    if (node->custom_initial_data && node->custom_initial_data_size > 0)
      o << " custom_data=" << sha256_hex(std::string(static_cast<const char*>(node->custom_initial_data),
                                                     static_cast<size_t>(node->custom_initial_data_size)));
    for (TfLiteIntArray* arr : {node->inputs, node->outputs}) {
      o << " |";
      for (int k = 0; k < arr->size; ++k) o << " " << arr->data[k];
    }
    o << "\n";
  }
  for (size_t t = 0; t < ctx->tensors_size; ++t) {
    const TensorInfo info = tensor_info(ctx, static_cast<int>(t));
    o << "tensor " << t << " type=" << static_cast<int>(ctx->tensors[t].type) << " shape=" << mpc::shape_str(info.shape)
      << " q=";
    for (float sc : info.scales) o << float_bits(sc) << ",";
    o << "/";
    for (int32_t z : info.zero_points) o << z << ",";
    o << "/" << info.qdim << (info.constant ? " const" : "") << (ctx->tensors[t].is_variable ? " variable" : "");
    if (info.constant && (info.type == DType::kInt32 || info.type == DType::kInt64) &&
        !secret_constants.count(static_cast<int>(t)) && info.data)
      o << " values=" << sha256_hex(std::string(reinterpret_cast<const char*>(info.data), info.bytes));
    o << "\n";
  }
  o << "inputs";
  for (int t : graph_inputs) o << " " << t;
  o << "\noutputs";
  for (int t : graph_outputs) o << " " << t;
  o << "\n";
  return o.str();
}

// A float region the converter left, DEQUANTIZE -> unary float ops -> QUANTIZE, each
// intermediate float tensor read only by the next node and never a graph output: its value is
// a function of the 8-bit input, computed as one table kernel at the DEQUANTIZE node (the
// other nodes are absorbed). False (the DEQUANTIZE is then judged on its own) otherwise.
bool float_region(TfLiteContext* ctx, const NodeView& dq, const std::set<int>& graph_outputs,
                  const std::vector<std::vector<int>>& readers, const std::vector<int>& order,
                  const std::vector<std::pair<TfLiteNode*, TfLiteRegistration*>>& nodes, Step* st) {
  const TensorInfo in = dq.input(0);
  if (!is_q8(in.type) || in.constant || dq.node->outputs->size != 1) return false;
  int t = dq.output_index(0);
  std::vector<std::string> ops;
  std::vector<int> chain;
  for (;;) {
    if (t < 0 || ctx->tensors[t].type != kTfLiteFloat32 || graph_outputs.count(t) || readers[t].size() != 1)
      return false;
    const int r = readers[t][0];
    const size_t rp = std::find(order.begin(), order.end(), r) - order.begin();
    if (rp >= order.size()) return false;
    TfLiteNode* rn = nodes[rp].first;
    const int rc = nodes[rp].second->builtin_code;
    if (rn->inputs->size != 1 || rn->outputs->size != 1 || rn->inputs->data[0] != t) return false;
    chain.push_back(r);
    if (rc == kTfLiteBuiltinQuantize) {
      const TensorInfo out = tensor_info(ctx, rn->outputs->data[0]);
      if (!is_q8(out.type) || ops.empty()) return false;
      st->in = in;
      st->out = out;
      st->kernel = make_float_region(in, ops, out);
      st->absorbs = chain;
      st->kind = Step::kKernel;
      return true;
    }
    if (!float_region_op(builtin_name(rc))) return false;
    ops.push_back(builtin_name(rc));
    t = rn->outputs->data[0];
  }
}

const char* const kNoKernel = "this op reads secret data and has no secure kernel";

// Why a node without a secure kernel is refused: a float op (what the converter leaves
// in float between DEQUANTIZE and QUANTIZE, or preprocessing on a float model input),
// or an op tflite-mpc does not implement.
std::string float_or_missing(TfLiteContext* ctx, TfLiteNode* node, int code, const std::vector<int>& graph_inputs) {
  bool float_in = false, graph_in = false;
  for (int k = 0; k < node->inputs->size; ++k) {
    const int t = node->inputs->data[k];
    if (t < 0) continue;
    if (ctx->tensors[t].type == kTfLiteFloat32) {
      float_in = true;
      if (std::count(graph_inputs.begin(), graph_inputs.end(), t)) graph_in = true;
    }
  }
  const std::string op = builtin_name(code);
  if (graph_in)
    return "float32 " + op + " on the model input (preprocessing): secure kernels compute on int8/uint8; "
           "apply the preprocessing at the data owner before the interpreter (e.g. a Keras model built with "
           "include_preprocessing=False) or quantize the model with the preprocessing inside (int8 I/O)";
  if (float_in)
    return "float32 " + op + " inside a float region the converter left (DEQUANTIZE -> float ops -> QUANTIZE); "
           "such a region runs as a table only if it is a chain of unary ops among ELU, NEG, ABS, EXP, SQUARE, "
           "TANH, LOGISTIC, RELU, RELU6, RELU_N1_TO_1";
  return "tflite-mpc has no secure kernel for " + op + " (this op reads secret data)";
}

std::shared_ptr<Plan> build_plan(TfLiteContext* ctx, const Options& opt, std::vector<int>* claimed) {
  auto plan = std::make_shared<Plan>();
  plan->opt = opt;
  {
    std::lock_guard<std::mutex> g(g_mu);
    g_last_check_ref().clear();
  }
  TfLiteIntArray* exec = nullptr;
  if (ctx->GetExecutionPlan(ctx, &exec) != kTfLiteOk || !exec) throw mpc::Error("cannot read the execution plan");
  std::vector<int> order(exec->data, exec->data + exec->size);
  const size_t T = ctx->tensors_size;
  std::vector<int> producer(T, -1), produced_at(T, -1);  // tensor -> node writing it, its position
  std::vector<std::vector<int>> readers(T);  // tensor -> nodes reading it
  std::vector<std::pair<TfLiteNode*, TfLiteRegistration*>> nodes(order.size());
  for (size_t pos = 0; pos < order.size(); ++pos) {
    TfLiteNode* node;
    TfLiteRegistration* reg;
    if (ctx->GetNodeAndRegistration(ctx, order[pos], &node, &reg) != kTfLiteOk)
      throw mpc::Error("cannot read node " + std::to_string(order[pos]));
    nodes[pos] = {node, reg};
    for (int k = 0; k < node->outputs->size; ++k) {
      const int t = node->outputs->data[k];
      if (t < 0) continue;
      // A node writing a constant (its data in the model, e.g. a weight's buffer shared with an
      // output, found by fuzzing) would overwrite the weight TFLite and the plan both read.
      if (ctx->tensors[t].allocation_type == kTfLiteMmapRo)  // not PersistentRo: outputs TFLite computes in Prepare
        throw ArgError("tflite-mpc cannot run " + node_label(order[pos], reg->builtin_code) + ": it writes tensor " +
                       std::to_string(t) + ", a constant with data in the model (malformed model). The model is refused.");
      if (producer[t] >= 0)
        throw ArgError("tflite-mpc cannot run " + node_label(order[pos], reg->builtin_code) + ": it writes tensor " +
                       std::to_string(t) + ", which node " + std::to_string(producer[t]) +
                       " also writes (malformed model). The model is refused.");
      producer[t] = order[pos];
      produced_at[t] = static_cast<int>(pos);
    }
    for (int k = 0; k < node->inputs->size; ++k)
      if (node->inputs->data[k] >= 0) {
        plan->consumers[node->inputs->data[k]]++;
        readers[node->inputs->data[k]].push_back(order[pos]);
      }
  }
  // TFLite's partitioner (PreviewDelegatePartitioning, ReplaceNodeSubsetsWithDelegateKernels)
  // assumes every node reads only tensors computed before it: a node reading its own output
  // or a later node's (a malformed model) crashes it, so such graphs are refused here.
  for (size_t pos = 0; pos < order.size(); ++pos) {
    TfLiteIntArray* in = nodes[pos].first->inputs;
    for (int k = 0; k < in->size; ++k) {
      const int t = in->data[k];
      if (t >= 0 && produced_at[t] >= static_cast<int>(pos))
        throw ArgError("tflite-mpc cannot run " + node_label(order[pos], nodes[pos].second->builtin_code) +
                       ": it reads tensor " + std::to_string(t) + ", which node " + std::to_string(producer[t]) +
                       (producer[t] == order[pos] ? " (itself)" : "") +
                       " computes only later (malformed model: a cycle). The model is refused.");
    }
  }
  plan->graph_outputs = declared_outputs(ctx, order, readers);
  std::vector<char> secret(T, 0);
  for (size_t t = 0; t < T; ++t) {
    const TfLiteTensor& ten = ctx->tensors[t];
    // Constant data (weights of any numeric type) is the model owner's secret; only
    // integer index constants (shapes, axes, paddings; int32 biases are consumed by
    // secure kernels) are public parameters of the graph.
    if (is_constant(ctx, static_cast<int>(t)) && ten.type != kTfLiteInt32 && ten.type != kTfLiteInt64)
      secret[t] = 1;
    // A variable tensor is model state, or a graph input flagged variable (the data owner's
    // input, set by the caller): never read in plaintext. Its readers are refused below.
    if (ten.is_variable) secret[t] = 1;
    if (producer[t] < 0 && !is_constant(ctx, static_cast<int>(t)) && !ten.is_variable &&
        plan->consumers.count(static_cast<int>(t))) {
      secret[t] = 1;  // a graph input: the data owner's secret
      plan->graph_inputs.push_back(static_cast<int>(t));
    }
  }
  std::set<int> secret_constants;
  std::map<int, int> public_reads;  // tensor -> a node that reads it in plaintext
  std::vector<NodeCheck> checks;    // every node's verdict (tflite_mpc.check)
  std::vector<std::string> refusals;  // "node N (OP) securely: why", every refused node
  std::map<int, int> absorbed;        // float-region node -> the DEQUANTIZE whose table computes it
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const int idx = order[pos];
    TfLiteNode* node = nodes[pos].first;
    TfLiteRegistration* reg = nodes[pos].second;
    const int code = reg->builtin_code;
    bool reads_secret = false;
    for (int k = 0; k < node->inputs->size; ++k) {
      const int t = node->inputs->data[k];
      if (t >= 0 && secret[t]) reads_secret = true;
    }
    if (code == kTfLiteBuiltinShape || !reads_secret) {
      // SHAPE reads only dimensions (public); other nodes here compute on public data.
      for (int k = 0; k < node->inputs->size; ++k)
        if (node->inputs->data[k] >= 0) public_reads.emplace(node->inputs->data[k], idx);
      checks.push_back({idx, builtin_name(code), "public",
                        code == kTfLiteBuiltinShape ? "reads only its input's dimensions (runs on TFLite)"
                                                    : "computes on public data only (runs on TFLite)"});
      continue;
    }
    Step st;
    st.node = idx;
    st.code = code;
    st.op = builtin_name(code);
    try {
      for (TfLiteIntArray* arr : {node->inputs, node->outputs})
        for (int k = 0; k < arr->size; ++k)
          if (arr->data[k] >= 0 && ctx->tensors[arr->data[k]].is_variable)
            throw ArgError("it reads or writes variable tensor " + std::to_string(arr->data[k]) +
                           " (model state), which secure plans do not support");
      NodeView nv{ctx, node, reg, idx, opt.fc_single_rounding};
      if (absorbed.count(idx)) {
        st.kind = Step::kAbsorbed;  // computed by node absorbed[idx]'s table
      } else if (code == kTfLiteBuiltinDequantize && float_region(ctx, nv, plan->graph_outputs, readers, order, nodes, &st)) {
        st.kernel->slot = -2 - idx;
        st.op = st.kernel->name();  // the report names the region: FLOAT_REGION(ELU)
        for (int n : st.absorbs) absorbed[n] = idx;
      } else if (code == kTfLiteBuiltinQuantize && nv.input(0).type == DType::kFloat32) {  // 8-bit -> 8-bit: a kernel
        st.in = nv.input(0);
        st.out = nv.output(0);
        const bool edge = std::find(plan->graph_inputs.begin(), plan->graph_inputs.end(), st.in.index) !=
                          plan->graph_inputs.end();
        require(edge || producer[st.in.index] < 0,
                "QUANTIZE closes a float region the converter left (DEQUANTIZE -> float ops -> QUANTIZE); "
                "float ops have no secure kernel");
        require(edge && st.in.type == DType::kFloat32,
                "QUANTIZE is only supported on a float32 model input (the data owner quantizes before sharing)");
        require(is_q8(st.out.type), "QUANTIZE must produce int8 or uint8");
        st.kind = Step::kQuantizeInput;
      } else if (code == kTfLiteBuiltinDequantize) {
        st.in = nv.input(0);
        st.out = nv.output(0);
        require(is_q8(st.in.type) && st.out.type == DType::kFloat32, "DEQUANTIZE must map int8 or uint8 to float32");
        // It reveals its input: only allowed where that value is a declared model output.
        std::string region;  // a float region DEQUANTIZE -> float op -> QUANTIZE: name the float op
        for (int r : readers[st.out.index]) {
          const size_t rp = std::find(order.begin(), order.end(), r) - order.begin();
          if (rp < order.size()) region += (region.empty() ? "" : ", ") + node_label(r, nodes[rp].second->builtin_code);
        }
        require(plan->consumers.count(st.out.index) == 0 && plan->graph_outputs.count(st.out.index),
                "DEQUANTIZE is only supported on a model output (the recipient dequantizes after reveal); "
                "tensor " + std::to_string(st.out.index) + " is not one of the interpreter's outputs" +
                    (region.empty() ? "" : " (it feeds a float region: " + region + ", which runs in float and has no secure kernel)"));
        st.kind = Step::kDequantizeOutput;
      } else {
        if (!has_secure_kernel(code)) throw ArgError(kNoKernel);
        st.kernel = build_kernel(nv);
        if (!st.kernel) throw ArgError(kNoKernel);
        st.kernel->slot = -2 - idx;
        // A node reading only model constants computes a function of the weights alone: the
        // converter folds such nodes; a crafted graph could route them to an output.
        require(st.kernel->inputs.empty() ||
                    !std::all_of(st.kernel->inputs.begin(), st.kernel->inputs.end(),
                                 [&](int t) { return is_constant(ctx, t); }),
                "every operand is a model constant, so its output would be a function of the weights alone");
        for (int t : st.kernel->inputs)
          if (is_constant(ctx, t) && !std::count(st.kernel->secret_constants.begin(),
                                                 st.kernel->secret_constants.end(), t))
            throw ArgError("it reads constant tensor " + std::to_string(t) +
                           " as data, which this kernel does not secret-share (a kernel reading a constant operand "
                           "must list it in secret_constants)");
        for (int c : st.kernel->secret_constants) secret_constants.insert(c);
      }
    } catch (const std::exception& e) {
      // Record it and go on: the message lists every node that makes the model refused.
      std::string why = e.what();
      if (why == kNoKernel) why = float_or_missing(ctx, node, code, plan->graph_inputs);
      checks.push_back({idx, builtin_name(code), "refused", why});
      refusals.push_back(node_label(idx, code) + " securely: " + why);
      for (int k = 0; k < node->outputs->size; ++k)
        if (node->outputs->data[k] >= 0) secret[node->outputs->data[k]] = 1;
      continue;
    }
    checks.push_back({idx, builtin_name(code), "secure",
                      st.kind == Step::kQuantizeInput     ? "the data owner quantizes its input before sharing it"
                      : st.kind == Step::kDequantizeOutput ? "the output recipient dequantizes after the reveal"
                      : st.kind == Step::kAbsorbed ? "in the float region of node " + std::to_string(absorbed[idx]) +
                                                         ", computed there as one table"
                      : !st.absorbs.empty() ? std::string("float region ") + st.kernel->name() +
                                                  " as a public 256-entry table"
                                            : "secure kernel"});
    for (int k = 0; k < node->outputs->size; ++k)
      if (node->outputs->data[k] >= 0) secret[node->outputs->data[k]] = 1;
    for (TfLiteIntArray* arr : {node->inputs, node->outputs})
      for (int k = 0; k < arr->size; ++k)
        if (arr->data[k] >= 0) plan->shapes[arr->data[k]] = tensor_info(ctx, arr->data[k]).shape;
    plan->steps.emplace(idx, std::move(st));
    plan->order.push_back(idx);
    for (int k = 0; k < node->inputs->size; ++k)
      if (node->inputs->data[k] >= 0)
        plan->last_use[node->inputs->data[k]] = static_cast<int>(plan->order.size()) - 1;
  }
  for (int c : secret_constants)
    if (public_reads.count(c)) {
      const int n = public_reads[c];
      int code = 0;
      for (size_t pos = 0; pos < order.size(); ++pos)
        if (order[pos] == n) code = nodes[pos].second->builtin_code;
      const std::string why = "it reads constant tensor " + std::to_string(c) + ", a model weight, in plaintext";
      for (auto& ch : checks)
        if (ch.node == n) ch = {n, builtin_name(code), "refused", why};
      refusals.push_back(node_label(n, code) + " securely: " + why);
    }
  if (refusals.empty() && opt.output_argmax) {
    // Only the argmax of a classifier's single [batch, classes] output is revealed.
    require(plan->graph_outputs.size() == 1,
            "option output=argmax needs a model with exactly one output computed by the delegate (this one has " +
                std::to_string(plan->graph_outputs.size()) + ")");
    const int t = *plan->graph_outputs.begin();
    TensorInfo info = tensor_info(ctx, t);
    for (auto& [n, st] : plan->steps)
      if (st.kind == Step::kDequantizeOutput && st.out.index == t) info = st.in;  // argmax of the int8 values
    require(is_q8(info.type) && info.shape.size() == 2 && info.shape[1] > 0,
            "option output=argmax needs the model's output to be a [batch, classes] int8 / uint8 tensor (or its "
            "DEQUANTIZE); output tensor " + std::to_string(t) + " is " + dtype_name(info.type) + " " +
                mpc::shape_str(info.shape));
    plan->argmax_rows = info.shape[0];
    plan->argmax_len = info.shape[1];
  }
  {
    std::lock_guard<std::mutex> g(g_mu);
    g_last_check_ref() = checks;
  }
  if (refusals.size() == 1)
    throw ArgError("tflite-mpc cannot run " + refusals[0] + ". The model is refused (no plaintext fallback).");
  if (!refusals.empty()) {
    std::string msg = "tflite-mpc cannot run " + std::to_string(refusals.size()) + " nodes securely:";
    for (const auto& r : refusals) msg += "\n  " + r.substr(0, r.find(" securely: ")) + ": " + r.substr(r.find(" securely: ") + 11);
    throw ArgError(msg + "\nThe model is refused (no plaintext fallback).");
  }
  *claimed = plan->order;
  plan->graph_hash = sha256_hex(public_graph(ctx, order, nodes, secret_constants, plan->graph_inputs,
                                             plan->graph_outputs));
  return plan;
}

// ------------------------------------------------------------------ partition kernel callbacks
void* PartitionInit(TfLiteContext* ctx, const char* buffer, size_t) {
  auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  auto* d = reinterpret_cast<MpcDelegate*>(params->delegate);
  auto* p = new Partition;
  p->plan = d->plan;
  for (int i = 0; i < params->nodes_to_replace->size; ++i) p->nodes.push_back(params->nodes_to_replace->data[i]);
  std::sort(p->nodes.begin(), p->nodes.end(), [&](int a, int b) {
    auto& o = p->plan->order;
    return std::find(o.begin(), o.end(), a) < std::find(o.begin(), o.end(), b);
  });
  p->first = !p->nodes.empty() && !p->plan->order.empty() && p->nodes[0] == p->plan->order[0];
  for (int i = 0; i < params->output_tensors->size; ++i) {
    const int t = params->output_tensors->data[i];
    // Only the interpreter's declared outputs are ever revealed.
    if (p->plan->graph_outputs.count(t)) p->reveal.push_back(t);
    else p->hidden.push_back(t);
  }
  (void)ctx;
  return p;
}

void PartitionFree(TfLiteContext*, void* buffer) { delete static_cast<Partition*>(buffer); }

TfLiteStatus PartitionPrepare(TfLiteContext* ctx, TfLiteNode* node) {
  auto* p = static_cast<Partition*>(node->user_data);
  // Plans are built for the shapes seen when the delegate was applied.
  for (auto& [t, want] : p->plan->shapes) {
    TensorInfo now = tensor_info(ctx, t);
    if (now.shape != want) {
      report(ctx, "tflite-mpc: tensor " + std::to_string(t) + " changed shape from " + mpc::shape_str(want) +
                      " to " + mpc::shape_str(now.shape) +
                      " after the delegate was applied; secure plans have fixed shapes (resize the input before "
                      "creating the interpreter with the delegate, or create a new one)");
      return kTfLiteError;
    }
  }
  // A revealed output whose shape TFLite computes at run time (e.g. TRANSPOSE_CONV's
  // output_shape from SHAPE arithmetic with a dynamic batch) is a dynamic tensor without a
  // buffer: allocate it at the plan's shape (ResizeTensor takes a malloc()'d array).
  for (int t : p->reveal) {
    TfLiteTensor& ten = ctx->tensors[t];
    if (ten.allocation_type != kTfLiteDynamic || ten.data.raw) continue;
    const Shape& shape = p->plan->shapes.at(t);
    auto* dims = static_cast<TfLiteIntArray*>(std::malloc(sizeof(int) * (1 + shape.size())));
    if (!dims) return kTfLiteError;
    dims->size = static_cast<int>(shape.size());
    for (size_t k = 0; k < shape.size(); ++k) dims->data[k] = static_cast<int>(shape[k]);
    if (ctx->ResizeTensor(ctx, &ten, dims) != kTfLiteOk) return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus PartitionInvoke(TfLiteContext* ctx, TfLiteNode* node) {
  auto* part = static_cast<Partition*>(node->user_data);
  Plan& P = *part->plan;
  std::lock_guard<std::mutex> lock(P.mu);
  try {
    const Options& opt = P.opt;
    const int nparties = P.session->parties();
    const bool owner_here = P.session->is_local(opt.data_owner);
    // Plaintext the data owner contributes: int8 graph inputs, or float inputs it quantizes.
    std::vector<std::pair<int, Vec>> owner_inputs;
    std::vector<Shape> owner_shapes;
    std::set<int> needed;
    for (int n : part->nodes) {
      const Step& st = P.steps.at(n);
      // Only the data owner reads its input; the other parties share with nothing.
      if (st.kind == Step::kQuantizeInput) {
        const size_t cnt = st.in.size();
        Vec v;
        if (owner_here) {
          std::vector<int64_t> q(cnt);
          quantize_input(st.in, st.out, ctx->tensors[st.in.index].data.f, q.data(), cnt);
          v.resize(cnt);
          for (size_t i = 0; i < cnt; ++i) v[i] = static_cast<uint64_t>(q[i]);
        }
        owner_inputs.emplace_back(st.out.index, std::move(v));
        owner_shapes.push_back(st.out.shape);
      } else if (st.kind == Step::kKernel) {
        for (int t : st.kernel->inputs)
          if (std::find(P.graph_inputs.begin(), P.graph_inputs.end(), t) != P.graph_inputs.end() && !needed.count(t)) {
            needed.insert(t);
            TensorInfo info = tensor_info(ctx, t);
            owner_inputs.emplace_back(t, owner_here ? encode_q8_tensor(ctx->tensors[t], info.size()) : Vec());
            owner_shapes.push_back(info.shape);
          }
      }
    }
    if (part->first) {
      P.last = Report{};
      P.last.graph_hash = P.graph_hash;
      P.last.fc_rounding = opt.fc_single_rounding ? "single" : "double";
      P.last.network = opt.net;
    }
    std::vector<LayerCost> layers(part->nodes.size());
    for (auto& l : layers) l.party.resize(nparties);
    LayerCost setup;  // one-time weight sharing, reported as its own entry
    setup.op = "share weights";
    setup.party.resize(nparties);
    const bool sharing_weights = !P.constants_ready;
    std::vector<std::map<int, Vec>> opened(nparties);  // per party: revealed tensors (recipient only)
    std::vector<int> positions;
    for (int n : part->nodes)
      positions.push_back(static_cast<int>(std::find(P.order.begin(), P.order.end(), n) - P.order.begin()));
    auto keep = [&](int t) {
      return is_constant(ctx, t) || std::count(part->reveal.begin(), part->reveal.end(), t) ||
             std::count(part->hidden.begin(), part->hidden.end(), t);
    };
    const double t_start = mpc::now_seconds();
    std::vector<mpc::OpCost> reveal_cost(nparties);  // per party: opening the outputs
    P.session->run([&](int i, mpc::Protocol& p) {
      Env env{p, opt.exact, P.store[i]};
      // A declared output (or with output=argmax its rows' argmax) opened to the recipients.
      auto open_output = [&](const Share& x, Vec* out) {
        const Share v = revealed_value(p, P, x);
        const mpc::OpCost before = p.stats().total();
        const double t0 = mpc::now_seconds();
        reveal_to_recipients(p, v, opt.output_to, out);
        reveal_cost[i].add(cost_since(p.stats(), before, t0));
      };
      if (!P.constants_ready) {
        // The model owner secret-shares every weight and bias once.
        const mpc::OpCost before = p.stats().total();
        const double t0 = mpc::now_seconds();
        mpc::OpScope scope(p.stats(), "share weights");
        // Shares only prepare() needs (FC weights before their layout) are freed as soon as
        // the last kernel reading them is prepared, unless a kernel reads them in eval.
        std::set<int> eval_reads;
        std::map<int, int> prepare_reads;  // constant -> kernels still to prepare from it
        for (int n : P.order) {
          const Step& st = P.steps.at(n);
          if (st.kind != Step::kKernel) continue;
          for (int c : st.kernel->secret_constants) {
            if (std::count(st.kernel->prepare_only.begin(), st.kernel->prepare_only.end(), c)) prepare_reads[c]++;
            else eval_reads.insert(c);
          }
        }
        for (int n : P.order) {
          Step& st = P.steps.at(n);
          if (st.kind != Step::kKernel) continue;
          for (int c : st.kernel->secret_constants) {
            if (env.vals.count(c)) continue;
            TensorInfo info = tensor_info(ctx, c);
            Vec v;
            if (i == opt.model_owner) {
              v = encode_constant(info);
              st.kernel->check_owner_constant(c, v);
            }
            env.set(c, p.input(opt.model_owner, info.shape, i == opt.model_owner ? v.data() : nullptr));
          }
          st.kernel->prepare(env);
          for (int c : st.kernel->prepare_only)
            if (--prepare_reads[c] == 0 && !eval_reads.count(c)) env.vals.erase(c);
        }
        setup.party[i] = cost_since(p.stats(), before, t0);
      }
      for (size_t k = 0; k < owner_inputs.size(); ++k)
        env.set(owner_inputs[k].first, p.input(opt.data_owner, owner_shapes[k],
                                               i == opt.data_owner ? owner_inputs[k].second.data() : nullptr));
      for (size_t s = 0; s < part->nodes.size(); ++s) {
        const Step& st = P.steps.at(part->nodes[s]);
        const mpc::OpCost before = p.stats().total();
        const double t0 = mpc::now_seconds();
        {
          mpc::OpScope scope(p.stats(), st.op.c_str());
          if (st.kind == Step::kKernel) st.kernel->eval(env);
          else if (st.kind == Step::kDequantizeOutput) {
            if (!std::count(part->reveal.begin(), part->reveal.end(), st.out.index))  // checked by build_plan
              throw mpc::Error("internal: DEQUANTIZE output " + std::to_string(st.out.index) + " is not revealed");
            open_output(env.get(st.in.index), &opened[i][st.out.index]);
          }
        }
        layers[s].party[i] = cost_since(p.stats(), before, t0);  // each party writes only its own slot
        // Free shares that no later step reads.
        for (auto it = env.vals.begin(); it != env.vals.end();) {
          auto lu = P.last_use.find(it->first);
          if (lu != P.last_use.end() && lu->second <= positions[s] && !keep(it->first)) it = env.vals.erase(it);
          else ++it;
        }
      }
      for (int t : part->reveal) {
        if (opened[i].count(t) || !env.vals.count(t)) continue;  // DEQUANTIZE outputs were opened above
        open_output(env.get(t), &opened[i][t]);
        env.vals.erase(t);
      }
    });
    P.constants_ready = true;
    // Write what a recipient hosted here opened; elsewhere the outputs stay zero.
    int recipient = -1;
    for (int r : opt.output_to)
      if (P.session->is_local(r) && recipient < 0) recipient = r;
    for (int t : part->reveal) {
      TfLiteTensor& ten = ctx->tensors[t];
      if (recipient < 0) {
        if (ten.data.raw) std::memset(ten.data.raw, 0, ten.bytes);
        continue;
      }
      const std::map<int, Vec>& out = opened[recipient];
      auto it = out.find(t);
      if (it == out.end()) throw mpc::Error("output tensor " + std::to_string(t) + " was not computed");
      const Vec& v = it->second;
      const Step* dqs = nullptr;
      for (int n : part->nodes)
        if (P.steps.at(n).kind == Step::kDequantizeOutput && P.steps.at(n).out.index == t) dqs = &P.steps.at(n);
      if (opt.output_argmax) {
        write_argmax(ten, dqs != nullptr, v, P);
      } else if (dqs) {
        std::vector<int64_t> q(v.begin(), v.end());
        dequantize_output(dqs->in, q.data(), ten.data.f, q.size());
      } else {
        write_output(ten, t, v);
      }
    }
    // Tensors handed to other partitions (or read by SHAPE) carry no data outside the plan.
    for (int t : part->hidden)
      if (ctx->tensors[t].data.raw && !is_constant(ctx, t)) std::memset(ctx->tensors[t].data.raw, 0, ctx->tensors[t].bytes);
    if (sharing_weights) {
      for (int i = 0; i < nparties; ++i)
        if (P.session->is_local(i)) {
          setup.seconds = setup.party[i].seconds;
          break;
        }
      P.last.layers.push_back(setup);
    }
    for (size_t s = 0; s < layers.size(); ++s) {
      layers[s].node = part->nodes[s];
      layers[s].op = P.steps.at(part->nodes[s]).op;
      for (int i = 0; i < nparties; ++i)
        if (P.session->is_local(i)) {
          layers[s].seconds = layers[s].party[i].seconds;
          break;
        }
      P.last.layers.push_back(layers[s]);
    }
    P.last.reveal.resize(nparties);
    for (int i = 0; i < nparties; ++i) P.last.reveal[i].add(reveal_cost[i]);
    P.last.seconds += mpc::now_seconds() - t_start;
    P.last.total.assign(nparties, mpc::OpCost{});
    for (auto& l : P.last.layers)
      for (int i = 0; i < nparties; ++i)
        if (i < static_cast<int>(l.party.size())) P.last.total[i].add(l.party[i]);
    {
      std::lock_guard<std::mutex> g(g_mu);
      g_last_report = std::make_unique<Report>(P.last);
    }
    return kTfLiteOk;
  } catch (const std::exception& e) {
    report(ctx, std::string("tflite-mpc: secure inference failed: ") + e.what());
    return kTfLiteError;
  }
}


// The reference FULLY_CONNECTED int8 kernel of tflite-runtime 2.14 requantizes with
// gemmlowp's two rounding steps; TF 2.21 and LiteRT 2.3 round once (measured against
// each interpreter's BUILTIN_REF). fc_rounding=auto tells them apart by the library
// that implements the interpreter's context.
bool runtime_rounds_fc_once(TfLiteContext* ctx) {
  Dl_info info;
  if (ctx->GetExecutionPlan && dladdr(reinterpret_cast<void*>(ctx->GetExecutionPlan), &info) && info.dli_fname)
    return std::string(info.dli_fname).find("tflite_runtime") == std::string::npos;
  return true;
}

TfLiteStatus DelegatePrepare(TfLiteContext* ctx, TfLiteDelegate* delegate) {
  auto* d = reinterpret_cast<MpcDelegate*>(delegate);
  try {
    Options o = d->opt;
    o.fc_single_rounding = o.fc_rounding == Options::FcRounding::kAuto ? runtime_rounds_fc_once(ctx)
                                                                        : o.fc_rounding == Options::FcRounding::kSingle;
    std::vector<int> claimed;
    auto plan = build_plan(ctx, o, &claimed);
    if (o.config) {
      // Every party must agree on the session: protocol, roles and the public graph.
      // tflite-mpc=2: the wire format (mpc/wire.h) and rep3's truncation messages of issue 7.
      std::string roles = std::to_string(o.data_owner) + "," + std::to_string(o.model_owner) + ",";
      for (int r : o.output_to) roles += std::to_string(r);
      roles += std::string(";fc_rounding=") + (o.fc_single_rounding ? "single" : "double");
      if (o.output_argmax) roles += ";output=argmax";  // what is revealed: every party must agree
      const std::string hello = "tflite-mpc=2;protocol=" + o.protocol + ";truncation=" +
                                (o.exact ? "exact" : "probabilistic") + ";roles=" + roles +
                                ";graph=" + plan->graph_hash;
      mpc::TcpOptions tcp = o.config->tcp_options(o.party, hello);
      tcp.net = o.net;
      plan->session = std::make_unique<mpc::RemoteSession>(o.protocol, tcp);
    } else {
      plan->session = std::make_unique<mpc::LocalSession>(o.protocol, o.timeout, 3, o.net);
    }
    for (int i = 0; i < plan->session->parties(); ++i)
      if (plan->session->is_local(i)) plan->session->party(i).debug_checks = o.debug_checks;
    plan->store.resize(plan->session->parties());
    plan->last.graph_hash = plan->graph_hash;
    plan->last.fc_rounding = o.fc_single_rounding ? "single" : "double";
    plan->last.network = o.net;
    d->plan = plan;
    if (claimed.empty()) return kTfLiteOk;
    TfLiteRegistration reg;
    std::memset(&reg, 0, sizeof(reg));  // passed by value: every byte must be defined
    reg.init = PartitionInit;
    reg.free = PartitionFree;
    reg.prepare = PartitionPrepare;
    reg.invoke = PartitionInvoke;
    reg.builtin_code = kTfLiteBuiltinDelegate;
    reg.custom_name = "TfLiteMpcDelegate";
    reg.version = 1;
    std::vector<int> arr(1 + claimed.size());
    arr[0] = static_cast<int>(claimed.size());
    std::copy(claimed.begin(), claimed.end(), arr.begin() + 1);
    return ctx->ReplaceNodeSubsetsWithDelegateKernels(ctx, reg, reinterpret_cast<TfLiteIntArray*>(arr.data()),
                                                      delegate);
  } catch (const std::exception& e) {
    report(ctx, e.what());
    return kTfLiteError;
  }
}

}  // namespace

// ------------------------------------------------------------------ options
namespace {
// A party id option value: exactly "0", "1" or "2".
int parse_party(const std::string& k, const std::string& v) {
  if (v != "0" && v != "1" && v != "2")
    throw ArgError("option " + k + "='" + v + "': expected 0, 1 or 2 (a party id)");
  return v[0] - '0';
}

// output_to: one party id or a comma-separated list of distinct ids ("0,2").
std::vector<int> parse_output_to(const std::string& v) {
  std::vector<int> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = v.find(',', start);
    std::string item = v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const size_t a = item.find_first_not_of(' '), b = item.find_last_not_of(' ');
    item = a == std::string::npos ? "" : item.substr(a, b - a + 1);
    if (item != "0" && item != "1" && item != "2")
      throw ArgError("option output_to='" + v + "': expected party ids 0, 1 or 2, one or a comma-separated list "
                     "(e.g. 0 or 0,2); '" + item + "' is not one");
    const int id = item[0] - '0';
    if (std::count(out.begin(), out.end(), id))
      throw ArgError("option output_to='" + v + "': party " + item + " is listed twice");
    out.push_back(id);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  return out;
}
}  // namespace

Options Options::parse(const std::vector<std::pair<std::string, std::string>>& kv) {
  static const char* kValid =
      "protocol (rep3), truncation (probabilistic|exact), data_owner (0|1|2), model_owner (0|1|2), "
      "output_to (0|1|2 or a list such as 0,2), fc_rounding (auto|single|double), timeout (seconds > 0), "
      "debug_checks (false|true; local mode only), output (values|argmax), parties (party configuration file: distributed mode), "
      "party (0|1|2: this process's party in distributed mode), network (none|lan|regional|wan: emulated links), "
      "latency_ms (one-way delay >= 0), bandwidth_mbps (per link and direction, > 0; 0: unlimited)";
  Options o;
  std::set<std::string> seen;
  for (auto& [k, v] : kv) {
    if (!seen.insert(k).second) throw ArgError("option '" + k + "' is given twice");
    if (k == "protocol") {
      auto names = mpc::protocol_names();
      if (std::find(names.begin(), names.end(), v) == names.end())
        throw ArgError("option protocol='" + v + "': valid protocols are rep3");
      o.protocol = v;
    } else if (k == "truncation") {
      if (v != "exact" && v != "probabilistic")
        throw ArgError("option truncation='" + v + "': expected 'probabilistic' or 'exact'");
      o.exact = v == "exact";
    } else if (k == "data_owner") {
      o.data_owner = parse_party(k, v);
    } else if (k == "model_owner") {
      o.model_owner = parse_party(k, v);
    } else if (k == "output_to") {
      o.output_to = parse_output_to(v);
    } else if (k == "fc_rounding") {
      if (v != "auto" && v != "single" && v != "double")
        throw ArgError("option fc_rounding='" + v + "': expected 'auto', 'single' (TF 2.21, LiteRT 2.3) or "
                       "'double' (tflite-runtime 2.14)");
      o.fc_rounding = v == "auto" ? FcRounding::kAuto : v == "single" ? FcRounding::kSingle : FcRounding::kDouble;
    } else if (k == "parties") {
      o.parties = v;
    } else if (k == "party") {
      o.party = parse_party(k, v);
    } else if (k == "timeout") {
      char* end = nullptr;
      const double t = std::strtod(v.c_str(), &end);
      if (v.empty() || !end || *end || !(t > 0) || !std::isfinite(t))
        throw ArgError("option timeout='" + v + "': expected a positive number of seconds");
      o.timeout = t;
    } else if (k == "output") {
      if (v != "values" && v != "argmax")
        throw ArgError("option output='" + v + "': expected 'values' (the output tensors) or 'argmax' (only the "
                       "index of each row's maximum of a single [batch, classes] output)");
      o.output_argmax = v == "argmax";
    } else if (k == "network") {
      o.net = mpc::NetEmu::profile_named(v, "option network='" + mpc::printable(v) + "': ");
    } else if (k == "latency_ms" || k == "bandwidth_mbps") {
      continue;  // applied after the loop, over the profile
    } else if (k == "debug_checks") {
      if (v != "true" && v != "false" && v != "1" && v != "0")
        throw ArgError("option debug_checks='" + v + "': expected true or false");
      o.debug_checks = v == "true" || v == "1";
    } else {
      throw ArgError("unknown option '" + k + "'; valid options: " + kValid);
    }
  }
  for (auto& [k, v] : kv) {
    if (k != "latency_ms" && k != "bandwidth_mbps") continue;
    const std::string what = "option " + k + "='" + mpc::printable(v) + "': ";
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || !end || *end) x = -1;  // not a number: rejected by override_with
    o.net.override_with(k == "latency_ms" ? &x : nullptr, k == "bandwidth_mbps" ? &x : nullptr, what);
  }
  for (auto& [k, v] : kv) o.net_given |= k == "network" || k == "latency_ms" || k == "bandwidth_mbps";
  if (!o.parties.empty()) {
    if (o.party < 0) throw ArgError("option 'parties' needs 'party' (this process's party id)");
    // debug_checks opens intermediate values to check their widths: with one party
    // per process, that hands a share to another party, which then holds all three.
    if (o.debug_checks)
      throw ArgError("option debug_checks=true is refused in distributed mode (it would send shares of "
                     "intermediate values to another party, revealing them); use it only in local mode");
    o.config = std::make_shared<PartyConfig>(PartyConfig::load(o.parties));
    // The configuration file, identical at every party, decides the session.
    for (auto& [k, v] : kv)
      if (k == "protocol" || k == "truncation" || k == "data_owner" || k == "model_owner" || k == "output_to" ||
          k == "output")
        throw ArgError("option '" + k + "' comes from the party configuration in distributed mode");
    o.protocol = o.config->protocol;
    o.exact = o.config->truncation == "exact";
    o.data_owner = o.config->data_owner;
    o.model_owner = o.config->model_owner;
    o.output_to = o.config->output_to;
    o.output_argmax = o.config->output == "argmax";
    o.timeout = o.config->timeout;
    if (!o.net_given) o.net = o.config->net;  // delegate options, if any, decide for this party's links
  } else if (o.party >= 0) {
    throw ArgError("option 'party' needs 'parties' (the party configuration file)");
  }
  return o;
}

std::vector<NodeCheck> last_check() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_last_check_ref();
}

std::string last_error() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_last_error;
}

Report* report_for(const void* delegate) {
  std::lock_guard<std::mutex> g(g_mu);
  for (MpcDelegate* d : g_live)
    if (static_cast<const void*>(d) == delegate) return d->plan ? &d->plan->last : nullptr;
  return nullptr;
}

Report* last_report() {
  std::lock_guard<std::mutex> g(g_mu);
  return g_last_report ? g_last_report.get() : nullptr;
}

}  // namespace tflite_mpc

using namespace tflite_mpc;

TFLITE_MPC_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(char** keys, char** values, size_t n,
                                                               void (*report_error)(const char*)) {
  try {
    std::vector<std::pair<std::string, std::string>> kv;
    for (size_t i = 0; i < n; ++i) kv.emplace_back(keys[i] ? keys[i] : "", values[i] ? values[i] : "");
    auto* d = new MpcDelegate;
    std::memset(&d->base, 0, sizeof(d->base));
    d->opt = Options::parse(kv);
    d->base.data_ = d;
    d->base.Prepare = DelegatePrepare;
    // Accept graphs with unknown batch dimensions; shapes are propagated before Prepare.
    d->base.flags = kTfLiteDelegateFlagsAllowDynamicTensors | kTfLiteDelegateFlagsRequirePropagatedShapes;
    std::lock_guard<std::mutex> g(g_mu);
    g_live.insert(d);
    return &d->base;
  } catch (const std::exception& e) {
    set_last_error(e.what());
    if (report_error) report_error((std::string("tflite-mpc: ") + e.what() + "\n").c_str());
    return nullptr;
  }
}

TFLITE_MPC_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  if (!delegate) return;
  auto* d = reinterpret_cast<MpcDelegate*>(delegate);
  {
    std::lock_guard<std::mutex> g(g_mu);
    g_live.erase(d);
  }
  if (d->plan && d->plan->session) {  // the session ends with its delegate: goodbye to the other parties
    std::lock_guard<std::mutex> g(d->plan->mu);
    d->plan->session->end();
  }
  delete d;  // partitions keep the plan (and its session) alive through their shared_ptr
}
