#include "local.h"

namespace mpc {

LocalSession::LocalSession(const std::string& protocol, double timeout_seconds, int parties, const NetEmu& net)
    : n_(parties), net_(parties, timeout_seconds, net), stats_(parties), errors_(parties) {
  for (int i = 0; i < n_; ++i) {
    tr_.push_back(net_.endpoint(i));
    comm_.push_back(std::make_unique<Comm>(*tr_[i], stats_[i]));
  }
  proto_.resize(n_);
  for (int i = 0; i < n_; ++i) threads_.emplace_back([this, i] { worker(i); });
  // Protocol construction may communicate (key exchange): do it on the party threads.
  std::function<void(int)> make = [&](int i) { proto_[i] = make_protocol(protocol, *comm_[i]); };
  try {
    dispatch(make);
  } catch (...) {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    throw;
  }
}

LocalSession::~LocalSession() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void LocalSession::worker(int i) {
  unsigned long seen = 0;
  for (;;) {
    const std::function<void(int)>* job;
    {
      std::unique_lock<std::mutex> g(mu_);
      cv_.wait(g, [&] { return stop_ || gen_ != seen; });
      if (stop_) return;
      seen = gen_;
      job = raw_job_;
    }
    try {
      (*job)(i);
    } catch (...) {
      errors_[i] = std::current_exception();
      try {
        throw;
      } catch (const std::exception& e) {
        net_.abort(std::string("party ") + std::to_string(i) + " failed: " + e.what());
      } catch (...) {
        net_.abort("party " + std::to_string(i) + " failed");
      }
    }
    {
      std::lock_guard<std::mutex> g(mu_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }
}

void LocalSession::dispatch(const std::function<void(int)>& fn, bool align) {
  if (broken_)
    throw Error("this session failed earlier (a party aborted mid-protocol) and cannot be reused; create a new one");
  if (align) net_.align_depth();
  {
    std::lock_guard<std::mutex> g(mu_);
    for (auto& e : errors_) e = nullptr;
    raw_job_ = &fn;
    pending_ = n_;
    ++gen_;
  }
  cv_.notify_all();
  {
    std::unique_lock<std::mutex> g(mu_);
    done_cv_.wait(g, [&] { return pending_ == 0; });
  }
  // Prefer the root cause (an argument error, else a failed check of an actively secure
  // protocol) over the parties it woke up.
  std::exception_ptr first;
  bool cheating = false;
  for (auto& e : errors_) {
    if (!e) continue;
    try {
      std::rethrow_exception(e);
    } catch (const ArgError&) {
      first = e;
      break;
    } catch (const CheatingDetected&) {
      if (!cheating) first = e;
      cheating = true;
    } catch (...) {
      if (!first) first = e;
    }
  }
  if (first) {
    net_.reset();
    // Argument errors are raised by every party before any communication or
    // randomness is consumed, so the session stays usable; anything else may
    // have left the parties out of step.
    try {
      std::rethrow_exception(first);
    } catch (const ArgError&) {
    } catch (...) {
      broken_ = true;
    }
    std::rethrow_exception(first);
  }
}

void LocalSession::run(const std::function<void(int, Protocol&)>& fn) {
  std::function<void(int)> f = [&](int i) { fn(i, *proto_[i]); };
  dispatch(f);
}

void LocalSession::run_continuing(const std::function<void(int, Protocol&)>& fn) {
  std::function<void(int)> f = [&](int i) { fn(i, *proto_[i]); };
  dispatch(f, false);
}

}  // namespace mpc
