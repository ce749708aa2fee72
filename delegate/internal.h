// Declarations shared by the delegate's source files (not part of any API).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "delegate/delegate.h"

namespace tflite_mpc {

// delegate.cc
bool is_constant(TfLiteContext* ctx, int t);             // data in the model (weights, public ints)
std::string node_label(int node, int code);               // "node 7 (CONV_2D)"
std::string sha256_hex(const std::string& s);
void set_last_check(std::vector<NodeCheck> checks);       // what tflite_mpc.check reads
void report_error(TfLiteContext* ctx, const std::string& msg);  // to TFLite and last_error()
void publish_report(const Report& r);                     // a copy for tflite_mpc.report(None)

// partition.cc: the partition kernel (TfLiteRegistration callbacks) and the report's run
// description (protocol, roles, network, which parties are seen).
void* PartitionInit(TfLiteContext* ctx, const char* buffer, size_t length);
void PartitionFree(TfLiteContext* ctx, void* buffer);
TfLiteStatus PartitionPrepare(TfLiteContext* ctx, TfLiteNode* node);
TfLiteStatus PartitionInvoke(TfLiteContext* ctx, TfLiteNode* node);
void describe_run(const Plan& P, Report& r);

// plan.cc: claims and judges every node; throws ArgError listing every refused node.
std::shared_ptr<Plan> build_plan(TfLiteContext* ctx, const Options& opt, std::vector<int>* claimed);

}  // namespace tflite_mpc
