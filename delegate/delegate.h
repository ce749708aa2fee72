// The tflite-mpc delegate: claims every node that touches secret data,
// refuses models it cannot run securely, and runs the claimed partitions as
// secure plans on the MPC engine.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "delegate/tflite_abi.h"
#include "kernels/kernel.h"
#include "delegate/config.h"
#include "mpc/local.h"

namespace tflite_mpc {

struct Options {
  std::string protocol = "rep3";
  bool exact = false;        // truncation=exact | probabilistic
  int data_owner = 0;        // party that supplies the input
  int model_owner = 1;       // party that supplies weights and biases
  std::vector<int> output_to{0};  // parties that receive the output (distinct, sorted)
  // fc_rounding: FULLY_CONNECTED requantization in exact mode. auto (default): double
  // if the interpreter is tflite-runtime, else single; resolved when the delegate is applied.
  enum class FcRounding { kAuto, kSingle, kDouble } fc_rounding = FcRounding::kAuto;
  bool fc_single_rounding = true;  // the resolved choice
  double timeout = 120.0;    // seconds a party waits for a peer
  bool debug_checks = false;  // insecure; refused in distributed mode
  // estimate=true: no MPC; every inference measures its costs (mpc/estimate.h); the outputs
  // are those of all-zero shares (not a result). Local mode only.
  bool estimate = false;
  // output=argmax: reveal only the index of each row's maximum of the single [batch, classes]
  // output (the output tensor then holds a one-hot), never the values.
  bool output_argmax = false;
  // Distributed mode: the party configuration file and the party this process is.
  // Emulated network (options network, latency_ms, bandwidth_mbps): local mode between the
  // parties; distributed mode on this party's outgoing links (else the party configuration's).
  mpc::NetEmu net;
  bool net_given = false;  // any of the three options was given
  std::string parties;
  int party = -1;
  std::shared_ptr<PartyConfig> config;
  // Parses TFLite's string options; throws ArgError listing the valid ones.
  static Options parse(const std::vector<std::pair<std::string, std::string>>& kv);
};

struct LayerCost {
  int node = -1;
  std::string op;
  Shape shape;  // its (first) output's shape; empty for the weight sharing
  double seconds = 0;
  std::vector<mpc::OpCost> party;  // per party
};

struct Report {
  std::vector<LayerCost> layers;
  double seconds = 0;
  std::vector<mpc::OpCost> total;  // per party
  std::vector<mpc::OpCost> reveal;  // per party: opening the declared outputs (in a DEQUANTIZE layer too)
  std::vector<mpc::OpCost> reveal_outside;  // per party: the part of `reveal` in no layer (not in `total`)
  std::string graph_hash;          // SHA-256 of the public graph (what distributed parties compare)
  std::string fc_rounding;         // single | double (resolved option)
  mpc::NetEmu network;             // the emulated network (profile none: no emulation)
  std::vector<int64_t> argmax;     // output=argmax: the revealed index per row (recipient only)
  bool estimated = false;          // option estimate: costs estimated, nothing computed (mpc/estimate.h)
  std::string protocol, truncation;  // rep3; exact | probabilistic
  int data_owner = 0, model_owner = 1;
  std::vector<int> output_to;
  int party = -1;                  // distributed mode: the party this process is (-1: local mode)
  // Per party: its figures are real. Local mode: all. Distributed mode: this party's, and at
  // the data owner and the output recipients the other parties' from their cost messages
  // (mpc/wire.h); otherwise they stay zeros.
  std::vector<bool> seen;
  std::vector<std::string> notes;  // e.g. a peer's cost message refused (our own words)
};

// How a claimed node runs.
struct Step {
  int node = -1;
  int code = 0;
  std::string op;
  // kAbsorbed: a float-region node computed by the table kernel of the region's DEQUANTIZE
  enum Kind { kKernel, kQuantizeInput, kDequantizeOutput, kAbsorbed } kind = kKernel;
  std::vector<int> absorbs;  // a float region's table kernel: the nodes it computes
  std::unique_ptr<Kernel> kernel;
  TensorInfo in, out;  // edges
  Shape out_shape;     // the node's first output's shape (for the report)
};

// Everything a model needs across partitions and invocations. Shared (not
// owned) by the delegate and its partition kernels, so teardown order does
// not matter.
struct Plan {
  Options opt;
  std::unique_ptr<mpc::Session> session;
  std::string graph_hash;                          // of the public graph (ops, shapes, quantization)
  std::map<int, Step> steps;                       // node index -> step
  std::vector<int> order;                          // claimed nodes, plan order
  std::map<int, int> last_use;                     // tensor -> last plan position reading it
  std::vector<int> graph_inputs;                   // secret inputs supplied by the data owner
  std::set<int> graph_outputs;                     // the interpreter's outputs produced by nodes: all that is revealed
  std::map<int, int> consumers;                    // tensor -> number of reading nodes
  std::map<int, Shape> shapes;                     // shapes the plan was built for
  int64_t argmax_rows = 0, argmax_len = 0;          // output=argmax: [rows, len] of the output
  std::vector<std::unordered_map<int, Share>> store;  // per party: secret values by tensor
  bool constants_ready = false;
  Report last;
  std::mutex mu;
};

struct MpcDelegate {
  TfLiteDelegate base;  // first member: TfLiteDelegate* == MpcDelegate*
  Options opt;
  std::shared_ptr<Plan> plan;
};

std::string last_error();
// What the last plan build decided for each node of the execution plan (tflite_mpc.check).
struct NodeCheck {
  int node = -1;
  std::string op;
  std::string status;  // secure | public | refused
  std::string detail;  // how it runs, or why it is refused
};
std::vector<NodeCheck> last_check();
Report* report_for(const void* delegate);  // nullptr if unknown
Report* last_report();

}  // namespace tflite_mpc
