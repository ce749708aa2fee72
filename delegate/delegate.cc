// TFLite delegate plugin entry points, applying the delegate (plan and session), and the
// process-wide state (live delegates, last report, last error). The plan is built in
// delegate/plan.cc, the partition kernel that runs it is delegate/partition.cc, options are
// parsed in delegate/options.cc.
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

}  // namespace

// TFLite glues consecutive reports together: end each with a newline.
void report_error(TfLiteContext* ctx, const std::string& msg) {
  set_last_error(msg);
  if (ctx && ctx->ReportError) ctx->ReportError(ctx, "%s\n", msg.c_str());
}

void publish_report(const Report& r) {
  std::lock_guard<std::mutex> g(g_mu);
  g_last_report = std::make_unique<Report>(r);
}

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

bool is_constant(TfLiteContext* ctx, int t) {
  const TfLiteTensor& ten = ctx->tensors[t];
  return ten.allocation_type == kTfLiteMmapRo || ten.allocation_type == kTfLitePersistentRo;
}

std::string node_label(int node, int code) {
  return std::string("node ") + std::to_string(node) + " (" + builtin_name(code) + ")";
}

namespace {

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
    report_error(ctx, e.what());
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
