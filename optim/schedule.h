// Learning-rate schedules as fairseq defines them (spec §6.4, §6.5).
//
// What this is: pure functions of the number of updates done, so a resumed run recomputes its lr
// from the saved update count and there is no schedule state to checkpoint. What this is not: the
// trainer decides when to ask; it sets optimizer.set_lr(schedule.lr_at(n)) before each step().
//
// Update numbering (spec §6.4): n = the number of COMPLETED updates. Update number n+1 (the
// (n+1)-th call to step()) uses lr_at(n); lr_at(0) is the rate of the very first update.
#pragma once

#include <cstdint>

namespace payless {

class LrSchedule {
 public:
  virtual ~LrSchedule() = default;
  virtual double lr_at(int64_t updates_done) const = 0;
};

// The same rate throughout.
class FixedSchedule : public LrSchedule {
 public:
  explicit FixedSchedule(double lr);
  double lr_at(int64_t updates_done) const override;

 private:
  double lr_;
};

// Linear warmup from warmup_init_lr to lr over warmup_updates (W >= 1), then decay with the
// inverse square root of the update count (fairseq `inverse_sqrt`):
//   lr(n) = lr_0 + n · (lr_max − lr_0) / W        n < W
//   lr(n) = lr_max · sqrt(W) / sqrt(n)            n >= W
// fairseq's default warmup_init_lr changed between versions (spec §6.4), so it has no default.
class InverseSqrtSchedule : public LrSchedule {
 public:
  InverseSqrtSchedule(double lr, int64_t warmup_updates, double warmup_init_lr);
  double lr_at(int64_t updates_done) const override;

 private:
  double lr_, warmup_init_lr_;
  int64_t warmup_updates_;
  double lr_step_;       // (lr_max − lr_0) / W
  double decay_factor_;  // lr_max · sqrt(W)
};

// Linear warmup as above (W may be 0: no warmup), then cosine annealing with restarts (fairseq
// `cosine`). With u = n − W, the cycle index i and the position t within cycle i of length T_i:
//   lr(n) = s^i · (lr_min + ½ (lr_max − lr_min) (1 + cos(π · t / T_i)))        s = lr_shrink
// Cycle i lasts T_i = period · t_mult^i updates (t_mult = 1: all cycles equal, i = floor(u /
// period), t = u − i·period). At the start of each cycle the rate jumps back up to s^i · lr_max.
struct CosineOptions {
  double lr_max = 1e-3;
  double lr_min = 1e-7;
  int64_t warmup_updates = 0;
  double warmup_init_lr = 1e-7;
  int64_t period = 20000;  // updates in the first cycle (fairseq --lr-period-updates)
  double t_mult = 1.0;     // >= 1: each cycle this many times longer than the one before
  double lr_shrink = 1.0;  // in (0, 1]: each cycle's rates multiplied by this
};

class CosineSchedule : public LrSchedule {
 public:
  explicit CosineSchedule(const CosineOptions& options);
  double lr_at(int64_t updates_done) const override;

 private:
  CosineOptions o_;
  double lr_step_;  // (lr_max − lr_0) / W, the warmup slope
};

}  // namespace payless
