// The one training loop that every task uses: batches in, loss, backward, gradient
// normalisation, clipping, Adam step, learning-rate schedule, periodic validation, logging and
// checkpoints that never lose work.
//
// One update (spec §6.6): `update_freq` batches are run forward and backward with their summed
// losses, the gradients are divided by the update's target-token count, clipped by global norm
// (clip_norm 0 = no clipping), and Adam steps with the schedule's rate for this update. An update
// whose loss or gradient norm is not finite is skipped (no step, gradients dropped) and reported;
// `max_bad_steps` in a row stop training with an error.
//
// Checkpoints (core/serialize.h), written atomically into save_dir:
//   checkpoint_last.safetensors       after every save interval and at the end
//   checkpoint_best.safetensors       whenever validation loss improves
//   checkpoint_<update>.safetensors   the last `keep_last_checkpoints` of these
// Each holds the parameters, Adam's moments, and in its metadata the model and training configs,
// the update count, epoch, data-loader position, RNG state, optimizer state and best validation
// loss, so that resuming gives bit-identical parameters and losses to a run that never stopped
// (same seed and thread count).
//
// Logging: a human line on stdout every log_interval updates, and the same numbers as JSON lines
// in log_path (`payless plot` draws them). Losses are in base 2, like the reference's logs.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/sequence_model.h"
#include "optim/adam.h"
#include "optim/schedule.h"

namespace payless {

// Training batches with an exact, saveable position; epochs wrap around inside.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual Batch next() = 0;
  virtual int64_t epoch() const = 0;  // the epoch (from 1) the next batch belongs to
  virtual nlohmann::json position() const = 0;
  virtual void restore(const nlohmann::json& position) = 0;
  virtual int64_t batches_per_epoch() const = 0;
};

struct EvalResult {
  double loss = 0;      // base 2, per target token
  double nll_loss = 0;  // base 2, per target token
  double ppl = 0;       // 2^nll_loss
  int64_t tokens = 0;
};

// Loss of `model` over batches, in eval mode and without recording.
EvalResult evaluate(SequenceModel& model, const std::vector<Batch>& batches, float smoothing,
                    SmoothingVariant variant);

struct UpdateRecord {
  int64_t update;
  double loss, nll_loss, gnorm, lr;  // loss and nll in base 2, per token
  int64_t tokens;
};

struct TrainerOptions {
  std::string save_dir;                 // checkpoints go here (created if missing)
  std::string log_path;                 // JSON lines; "" for none
  nlohmann::json metadata;              // extra facts stored in every checkpoint (data, vocab)
  bool quiet = false;                   // no human log lines (tests)
};

class Trainer {
 public:
  Trainer(SequenceModel& model, TrainConfig config, BatchSource& train, std::vector<Batch> valid,
          TrainerOptions options);

  // Restores everything a checkpoint_* file holds; the next run() continues where it stopped.
  void resume(const std::string& checkpoint_path);

  // Trains until max_update, max_epoch or the time budget; then validates and saves.
  void run();

  int64_t updates() const { return updates_; }
  double best_valid_loss() const { return best_valid_loss_; }
  const std::vector<UpdateRecord>& history() const { return history_; }
  const EvalResult& last_validation() const { return last_valid_; }

  // Where save_dir's checkpoints are.
  std::string checkpoint_path(const std::string& which) const;

 private:
  bool train_one_update();  // false when the update was skipped (non-finite)
  void validate_and_maybe_save_best();
  void save(const std::string& path);
  void save_periodic();
  void log_event(nlohmann::json event);
  bool should_stop() const;

  SequenceModel& model_;
  TrainConfig config_;
  BatchSource& train_;
  std::vector<Batch> valid_;
  TrainerOptions options_;
  NamedTensors params_;
  std::unique_ptr<Adam> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  SmoothingVariant variant_;

  int64_t updates_ = 0;
  int64_t bad_in_a_row_ = 0;
  double best_valid_loss_ = 1e300;
  EvalResult last_valid_;
  std::vector<UpdateRecord> history_;
  std::vector<int64_t> numbered_checkpoints_;
  int64_t last_saved_update_ = -1;
  double previous_seconds_ = 0;  // training time of earlier runs (restored on resume)
  std::chrono::steady_clock::time_point start_;
  // Since the last log line:
  double window_loss_ = 0, window_nll_ = 0, window_gnorm_ = 0;
  int64_t window_tokens_ = 0, window_updates_ = 0;
  std::chrono::steady_clock::time_point window_start_;
};

}  // namespace payless
