// TFLite delegate plugin entry points, the partition kernel that runs a plan, and the
// process-wide state (live delegates, last report, last error). The plan is built in
// delegate/plan.cc, options are parsed in delegate/options.cc.
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

#include "delegate/internal.h"
#include "delegate/registry.h"
#include "mpc/estimate.h"
#include "mpc/stats.h"
#include "mpc/wire.h"

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

}  // namespace

// Shared with plan.cc (delegate/internal.h).
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
  for (int i = 0; i < 3; ++i) d.bytes_to[i] -= before.bytes_to[i];
  d.calls = 1;
  d.seconds = mpc::now_seconds() - t0 + (d.adjust_seconds - before.adjust_seconds);
  d.adjust_seconds = 0;
  return d;
}

bool is_constant(TfLiteContext* ctx, int t) {
  const TfLiteTensor& ten = ctx->tensors[t];
  return ten.allocation_type == kTfLiteMmapRo || ten.allocation_type == kTfLitePersistentRo;
}

std::string node_label(int node, int code) {
  return std::string("node ") + std::to_string(node) + " (" + builtin_name(code) + ")";
}

namespace {

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

// The run's settings, as the report states them.
void describe_run(const Plan& P, Report& r) {
  const Options& o = P.opt;
  r.graph_hash = P.graph_hash;
  r.fc_rounding = o.fc_single_rounding ? "single" : "double";
  r.network = o.net;
  r.protocol = o.protocol;
  r.truncation = o.exact ? "exact" : "probabilistic";
  r.data_owner = o.data_owner;
  r.model_owner = o.model_owner;
  r.output_to = o.output_to;
  r.party = o.config ? o.party : -1;
  r.estimated = o.estimate;
  if (r.seen.empty() && P.session) {
    r.seen.assign(P.session->parties(), false);
    for (int i = 0; i < P.session->parties(); ++i) r.seen[i] = P.session->is_local(i);
  }
}

bool distributed(const Plan& P) {
  for (int i = 0; i < P.session->parties(); ++i)
    if (!P.session->is_local(i)) return true;
  return false;
}

// Who receives the other parties' cost messages: the data owner and the output recipients.
std::vector<int> cost_recipients(const Options& o) {
  std::vector<int> to = o.output_to;
  if (!std::count(to.begin(), to.end(), o.data_owner)) to.push_back(o.data_owner);
  return to;
}

// This process hosts a party that receives the other parties' cost messages.
bool gets_costs(const Plan& P) {
  for (int r : cost_recipients(P.opt))
    if (P.session->is_local(r)) return true;
  return false;
}

// Distributed mode, once a partition's outputs are opened: every party sends its own figures
// (entries(i): pointers to party i's slots) to the cost recipients, which fill the other
// parties' slots from them. One message, on the transport directly: not counted in the stats.
// A message that does not check out leaves that party's figures zero (and says so in the
// report); one of the wrong length fails the run like any frame out of protocol.
template <class Entries>
void exchange_costs(Plan& P, const Entries& entries) {
  if (!distributed(P)) return;
  const int n = P.session->parties();
  const std::vector<int> to = cost_recipients(P.opt);
  const size_t count = entries(0).size();
  if (count > mpc::kMaxCostEntries) {  // every party knows: nobody sends
    for (int j = 0; j < n; ++j)
      if (!P.session->is_local(j)) P.last.seen[j] = false;
    P.last.notes.push_back("the plan has too many layers for cost messages: the other parties' figures are left out");
    return;
  }
  P.session->run([&](int me, mpc::Protocol& p) {
    mpc::Transport& tr = p.comm().transport();
    std::vector<mpc::OpCost> mine;
    for (const mpc::OpCost* c : entries(me)) mine.push_back(*c);
    const Vec msg = mpc::encode_cost_message(me, mine);
    for (int r : to)
      if (r != me) tr.send(r, msg.data(), msg.size() * 8);
    if (!std::count(to.begin(), to.end(), me)) return;
    for (int j = 0; j < n; ++j) {
      if (j == me) continue;
      Vec got(mpc::cost_message_words(count));
      tr.recv(j, got.data(), got.size() * 8);
      std::vector<mpc::OpCost> theirs;
      const std::string why = mpc::decode_cost_message(got.data(), got.size(), j, count, &theirs);
      if (!why.empty()) {
        P.last.seen[j] = false;
        P.last.notes.push_back("party " + std::to_string(j) + "'s cost message was refused (" + why +
                               "): its figures are left out");
        continue;
      }
      const auto slots = entries(j);
      for (size_t k = 0; k < count; ++k) *slots[k] = theirs[k];
    }
  });
}

struct Partition {
  std::shared_ptr<Plan> plan;
  std::vector<int> nodes;     // plan order
  std::vector<int> reveal;    // graph outputs of this partition (int8 tensors revealed)
  std::vector<int> hidden;    // outputs consumed elsewhere: their TFLite buffers get zeros
  bool first = false;         // contains the first claimed node: starts a new report
};

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
      describe_run(P, P.last);
      P.last.seen.assign(nparties, false);
      for (int i = 0; i < nparties; ++i)  // remote parties: once their cost messages arrive
        P.last.seen[i] = P.session->is_local(i) || gets_costs(P);
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
    std::vector<mpc::OpCost> reveal_outside(nparties);  // ... the part of it in no layer
    P.session->run([&](int i, mpc::Protocol& p) {
      Env env{p, opt.exact, P.store[i]};
      // A declared output (or with output=argmax its rows' argmax) opened to the recipients.
      auto open_output = [&](const Share& x, Vec* out, bool in_layer) {
        const Share v = revealed_value(p, P, x);
        const mpc::OpCost before = p.stats().total();
        const double t0 = mpc::now_seconds();
        reveal_to_recipients(p, v, opt.output_to, out);
        const mpc::OpCost c = cost_since(p.stats(), before, t0);
        reveal_cost[i].add(c);
        if (!in_layer) reveal_outside[i].add(c);
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
          if (st.kind == Step::kKernel) {
            st.kernel->eval(env);
            if (mpc::fault::armed())  // tests only: a party deviating on a share it holds (mpc/fault.h)
              for (int t : st.kernel->outputs) {
                auto it = env.vals.find(t);
                if (it != env.vals.end() && !it->second.a.empty())
                  mpc::fault::maybe_tamper(i, -1, "share", it->second.a.data(), it->second.a.size());
              }
          }
          else if (st.kind == Step::kDequantizeOutput) {
            if (!std::count(part->reveal.begin(), part->reveal.end(), st.out.index))  // checked by build_plan
              throw mpc::Error("internal: DEQUANTIZE output " + std::to_string(st.out.index) + " is not revealed");
            open_output(env.get(st.in.index), &opened[i][st.out.index], true);
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
        open_output(env.get(t), &opened[i][t], false);
        env.vals.erase(t);
      }
    });
    P.constants_ready = true;
    {
      // This partition's figures per party, in the order of the cost message.
      auto entries = [&](int i) {
        std::vector<mpc::OpCost*> e;
        if (sharing_weights) e.push_back(&setup.party[i]);
        for (auto& l : layers) e.push_back(&l.party[i]);
        e.push_back(&reveal_cost[i]);
        e.push_back(&reveal_outside[i]);
        return e;
      };
      exchange_costs(P, entries);
    }
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
      layers[s].shape = P.steps.at(part->nodes[s]).out_shape;
      for (int i = 0; i < nparties; ++i)
        if (P.session->is_local(i)) {
          layers[s].seconds = layers[s].party[i].seconds;
          break;
        }
      P.last.layers.push_back(layers[s]);
    }
    P.last.reveal.resize(nparties);
    P.last.reveal_outside.resize(nparties);
    for (int i = 0; i < nparties; ++i) {
      P.last.reveal[i].add(reveal_cost[i]);
      P.last.reveal_outside[i].add(reveal_outside[i]);
    }
    if (opt.estimate) {  // the estimated time of the slowest party (local mode: they run side by side)
      double slowest = 0;
      for (int i = 0; i < nparties; ++i) {
        double t = reveal_outside[i].seconds + (sharing_weights ? setup.party[i].seconds : 0.0);
        for (auto& l : layers) t += l.party[i].seconds;
        slowest = std::max(slowest, t);
      }
      P.last.seconds += slowest;
    } else {
      P.last.seconds += mpc::now_seconds() - t_start;
    }
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
      // tflite-mpc=2: the wire format (mpc/wire.h) and rep3's truncation messages of issue 7;
      // 3: the cost message after each partition (mpc/wire.h).
      std::string roles = std::to_string(o.data_owner) + "," + std::to_string(o.model_owner) + ",";
      for (int r : o.output_to) roles += std::to_string(r);
      roles += std::string(";fc_rounding=") + (o.fc_single_rounding ? "single" : "double");
      if (o.output_argmax) roles += ";output=argmax";  // what is revealed: every party must agree
      const std::string hello = "tflite-mpc=3;protocol=" + o.protocol + ";truncation=" +
                                (o.exact ? "exact" : "probabilistic") + ";roles=" + roles +
                                ";graph=" + plan->graph_hash;
      mpc::TcpOptions tcp = o.config->tcp_options(o.party, hello);
      tcp.net = o.net;
      plan->session = std::make_unique<mpc::RemoteSession>(o.protocol, tcp);
    } else if (o.estimate) {
      plan->session = std::make_unique<mpc::EstimateSession>(o.protocol);
    } else {
      plan->session = std::make_unique<mpc::LocalSession>(o.protocol, o.timeout, 3, o.net);
    }
    for (int i = 0; i < plan->session->parties(); ++i)
      if (plan->session->is_local(i)) plan->session->party(i).debug_checks = o.debug_checks;
    plan->store.resize(plan->session->parties());
    describe_run(*plan, plan->last);
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

void set_last_check(std::vector<NodeCheck> checks) {
  std::lock_guard<std::mutex> g(g_mu);
  g_last_check_ref() = std::move(checks);
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
