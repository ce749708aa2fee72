// The partition kernel: runs a claimed partition of the graph as a secure plan on the
// plan's session (local, distributed or estimate), writes what a recipient opened into the
// TFLite output tensors, and keeps the report (per layer and party), including the other
// parties' cost messages in distributed mode. The plan is built in delegate/plan.cc; the
// plugin entry points and process-wide state are in delegate/delegate.cc.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <set>

#include "delegate/delegate.h"
#include "delegate/internal.h"
#include "delegate/registry.h"
#include "mpc/stats.h"
#include "mpc/wire.h"

namespace tflite_mpc {

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

namespace {

// A shared value's type range [type_lo, type_lo + 2^type_bits) (encode_constant's types).
int64_t type_lo(DType t) {
  return t == DType::kInt8 ? -128 : t == DType::kUInt8 ? 0 : t == DType::kInt32 ? -(int64_t(1) << 31) : 0;
}
int type_bits(DType t) { return t == DType::kInt8 || t == DType::kUInt8 ? 8 : t == DType::kInt32 ? 32 : 63; }

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

}  // namespace

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
      report_error(ctx, "tflite-mpc: tensor " + std::to_string(t) + " changed shape from " + mpc::shape_str(want) +
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
    std::vector<DType> owner_types;
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
        owner_types.push_back(st.out.type);
      } else if (st.kind == Step::kKernel) {
        for (int t : st.kernel->inputs)
          if (std::find(P.graph_inputs.begin(), P.graph_inputs.end(), t) != P.graph_inputs.end() && !needed.count(t)) {
            needed.insert(t);
            TensorInfo info = tensor_info(ctx, t);
            owner_inputs.emplace_back(t, owner_here ? encode_q8_tensor(ctx->tensors[t], info.size()) : Vec());
            owner_shapes.push_back(info.shape);
            owner_types.push_back(info.type);
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
        std::vector<mpc::Protocol::RangeCheck> ranges;  // pointers into env.vals: stable (node-based map)
        std::vector<int> freed;
        std::deque<Share> negated;  // -bias, for the upper side of a bias's range check
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
            // A kernel with a narrow accumulator plan reads, instead of its bias, the shifted and
            // saturated b' (kernels/kernel.h, NarrowAcc), which the model owner derives from it.
            const bool derived = c == st.kernel->acc_bias && st.kernel->narrow.on();
            const int key = derived ? st.kernel->narrow_slot() : c;
            if (env.vals.count(key)) continue;
            TensorInfo info = tensor_info(ctx, c);
            Vec v;
            if (i == opt.model_owner) {
              v = encode_constant(info);
              st.kernel->check_owner_constant(c, v);
              if (derived) v = st.kernel->narrow.derive(v);
            }
            env.set(key, p.input(opt.model_owner, info.shape, i == opt.model_owner ? v.data() : nullptr));
            // the type's range (b': its clamp's), checked by actively secure protocols
            if (derived) {
              ranges.push_back({&env.get(key), st.kernel->narrow.derived_lo(), st.kernel->narrow.derived_bits()});
            } else if (c == st.kernel->acc_bias) {
              // the owner's own bound, both sides: b + bb + 1 and bb - b in [0, 2^32), so that
              // the accumulator stays within int32 as the requantization assumes
              const int64_t bb = st.kernel->bias_bound();
              negated.push_back(p.neg(env.get(key)));
              ranges.push_back({&env.get(key), -(bb + 1), 32});
              ranges.push_back({&negated.back(), -bb, 32});
            } else {
              ranges.push_back({&env.get(key), type_lo(info.type), type_bits(info.type)});
            }
          }
          st.kernel->prepare(env);
          for (int c : st.kernel->prepare_only)
            if (--prepare_reads[c] == 0 && !eval_reads.count(c)) freed.push_back(c);
        }
        p.check_ranges(ranges);  // one pass for every constant (its shares stay until then)
        for (int c : freed) env.vals.erase(c);
        setup.party[i] = cost_since(p.stats(), before, t0);
      }
      std::vector<mpc::Protocol::RangeCheck> in_ranges;
      for (size_t k = 0; k < owner_inputs.size(); ++k) {
        env.set(owner_inputs[k].first, p.input(opt.data_owner, owner_shapes[k],
                                               i == opt.data_owner ? owner_inputs[k].second.data() : nullptr));
        in_ranges.push_back({&env.get(owner_inputs[k].first), type_lo(owner_types[k]), type_bits(owner_types[k])});
      }
      p.check_ranges(in_ranges);
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
      // After the outputs are written: a peer's bad or missing cost message costs only its
      // figures (and the session, whose stream it may have left out of step), not the result.
      try {
        exchange_costs(P, entries);
      } catch (const std::exception& e) {
        P.last.notes.push_back(std::string("the cost messages failed (") + e.what() +
                               "); the other parties' figures are left out and the session is ended");
        for (int j = 0; j < nparties; ++j)
          if (!P.session->is_local(j)) P.last.seen[j] = false;
        P.session->end();
      }
    }
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
      publish_report(P.last);
    }
    return kTfLiteOk;
  } catch (const std::exception& e) {
    report_error(ctx, std::string("tflite-mpc: secure inference failed: ") + e.what());
    return kTfLiteError;
  }
}


// The reference FULLY_CONNECTED int8 kernel of tflite-runtime 2.14 requantizes with
// gemmlowp's two rounding steps; TF 2.21 and LiteRT 2.3 round once (measured against
// each interpreter's BUILTIN_REF). fc_rounding=auto tells them apart by the library
// that implements the interpreter's context.

}  // namespace tflite_mpc
