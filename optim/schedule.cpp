// See optim/schedule.h. The formulas follow fairseq's inverse_square_root_schedule.py and
// cosine_lr_scheduler.py operation by operation, so the doubles come out the same.
#include "optim/schedule.h"

#include <cmath>

#include "core/error.h"

namespace payless {

namespace {

void check_rate(double lr, const char* what) {
  if (!std::isfinite(lr) || lr < 0) fail(what, " must be finite and >= 0, got ", lr);
}

void check_update(int64_t n, const char* schedule) {
  if (n < 0) fail(schedule, ": the number of updates done must be >= 0, got ", n);
}

constexpr double kPi = 3.14159265358979323846;

}  // namespace

FixedSchedule::FixedSchedule(double lr) : lr_(lr) { check_rate(lr, "fixed schedule: lr"); }

double FixedSchedule::lr_at(int64_t updates_done) const {
  check_update(updates_done, "fixed schedule");
  return lr_;
}

InverseSqrtSchedule::InverseSqrtSchedule(double lr, int64_t warmup_updates, double warmup_init_lr)
    : lr_(lr), warmup_init_lr_(warmup_init_lr), warmup_updates_(warmup_updates) {
  check_rate(lr, "inverse_sqrt schedule: lr");
  check_rate(warmup_init_lr, "inverse_sqrt schedule: warmup_init_lr");
  // W = 0 would make the decay lr·sqrt(0/n) = 0: the rule needs a warmup length.
  if (warmup_updates < 1)
    fail("inverse_sqrt schedule: warmup_updates must be >= 1, got ", warmup_updates);
  lr_step_ = (lr - warmup_init_lr) / static_cast<double>(warmup_updates);
  decay_factor_ = lr * std::sqrt(static_cast<double>(warmup_updates));
}

double InverseSqrtSchedule::lr_at(int64_t n) const {
  check_update(n, "inverse_sqrt schedule");
  if (n < warmup_updates_) return warmup_init_lr_ + static_cast<double>(n) * lr_step_;
  return decay_factor_ * std::pow(static_cast<double>(n), -0.5);  // fairseq: n ** -0.5
}

CosineSchedule::CosineSchedule(const CosineOptions& options) : o_(options) {
  check_rate(o_.lr_max, "cosine schedule: lr_max");
  check_rate(o_.lr_min, "cosine schedule: lr_min");
  check_rate(o_.warmup_init_lr, "cosine schedule: warmup_init_lr");
  if (o_.lr_min > o_.lr_max)
    fail("cosine schedule: lr_min (", o_.lr_min, ") is above lr_max (", o_.lr_max, ")");
  if (o_.warmup_updates < 0)
    fail("cosine schedule: warmup_updates must be >= 0, got ", o_.warmup_updates);
  if (o_.period < 1) fail("cosine schedule: period must be >= 1 update, got ", o_.period);
  if (!(o_.t_mult >= 1) || !std::isfinite(o_.t_mult))
    fail("cosine schedule: t_mult must be >= 1, got ", o_.t_mult);
  if (!(o_.lr_shrink > 0 && o_.lr_shrink <= 1))
    fail("cosine schedule: lr_shrink must be in (0, 1], got ", o_.lr_shrink);
  lr_step_ = o_.warmup_updates > 0
                 ? (o_.lr_max - o_.warmup_init_lr) / static_cast<double>(o_.warmup_updates)
                 : 0.0;
}

double CosineSchedule::lr_at(int64_t n) const {
  check_update(n, "cosine schedule");
  if (n < o_.warmup_updates) return o_.warmup_init_lr + static_cast<double>(n) * lr_step_;
  const double u = static_cast<double>(n - o_.warmup_updates);
  const double period = static_cast<double>(o_.period);
  double i, t_i, t;
  if (o_.t_mult == 1.0) {
    i = std::floor(u / period);
    t_i = period;
    t = u - period * i;
  } else {
    // Cycles of period·t_mult^i: walk them instead of fairseq's closed form
    // i = floor(log_{t_mult}(1 − u/period·(1 − t_mult))), whose rounding can misplace an update
    // that falls exactly on a cycle boundary. Cycles grow geometrically, so this loop is short.
    i = 0;
    t_i = period;
    t = u;
    while (t >= t_i) {
      t -= t_i;
      t_i *= o_.t_mult;
      i += 1;
    }
  }
  const double shrink = std::pow(o_.lr_shrink, i);
  const double lr_min = o_.lr_min * shrink;
  const double lr_max = o_.lr_max * shrink;
  return lr_min + 0.5 * (lr_max - lr_min) * (1 + std::cos(kPi * t / t_i));
}

}  // namespace payless
