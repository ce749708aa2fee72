// Plan construction: which nodes the delegate claims, the secure kernel or edge step of
// each, every refused node with its reason (tflite_mpc.check), float regions as tables, the
// declared outputs, and the public-graph hash distributed parties compare.
#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "delegate/internal.h"
#include "delegate/registry.h"

namespace tflite_mpc {

namespace {

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

}  // namespace

std::shared_ptr<Plan> build_plan(TfLiteContext* ctx, const Options& opt, std::vector<int>* claimed) {
  auto plan = std::make_shared<Plan>();
  plan->opt = opt;
  set_last_check({});
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
    if (node->outputs->size > 0 && node->outputs->data[0] >= 0 &&
        static_cast<size_t>(node->outputs->data[0]) < ctx->tensors_size && ctx->tensors[node->outputs->data[0]].dims) {
      const TfLiteIntArray* dims = ctx->tensors[node->outputs->data[0]].dims;
      st.out_shape.assign(dims->data, dims->data + dims->size);
    }
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
  // Narrow rings (mpc::RequantSpec::out_bits): a kernel's output whose every reader is a layer
  // reading it as its input x reads it only as far as that layer's requantization reads the
  // accumulator (its products are needed mod 2^b, and so is x): the producing requantization
  // then sends its last messages in b bits. Graph outputs and anything else: the whole ring.
  for (auto& [n, st] : plan->steps) {
    if (st.kind != Step::kKernel || !st.kernel || st.kernel->outputs.size() != 1) continue;
    const int t = st.kernel->out();
    int bits = plan->graph_outputs.count(t) || readers[t].empty() ? 64 : 1;
    for (int r : readers[t]) {
      auto it = plan->steps.find(r);
      const Kernel* k = it == plan->steps.end() || it->second.kind != Step::kKernel ? nullptr : it->second.kernel.get();
      if (!k || k->inputs.empty() || k->in() != t || std::count(k->inputs.begin(), k->inputs.end(), t) != 1) {
        bits = 64;
        break;
      }
      bits = std::max(bits, k->input_bits(opt.protocol, opt.exact, opt.debug_checks));
    }
    st.kernel->out_bits = bits;
  }
  set_last_check(checks);
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


}  // namespace tflite_mpc
