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
// (same seed, thread count and number of ranks).
//
// Logging: a human line on stdout every log_interval updates, and the same numbers as JSON lines
// in log_path (`payless plot` draws them). Losses are in base 2, like the reference's logs.
//
// Data-parallel training (when started by `mpirun -np N`, core/distributed.h): every rank holds
// the whole model and the same batch stream; of each batch it runs only its shard
// (shard_batch: a contiguous slice of the rows), so max_tokens is the GLOBAL batch and N ranks
// compute what one process computes with the whole batch. After the update's backward passes the
// gradients of all ranks are summed in one flat buffer (one all-reduce), together with the loss
// sums and the target-token count; then every rank normalises by the global token count, clips by
// the global norm and takes the identical Adam step, so the parameters stay the same on every
// rank without ever being sent. Every decision that ends or skips something is taken from summed
// numbers (a non-finite update) or by rank 0 alone and broadcast (the time budget). Validation is
// shared out by batch and summed. Only rank 0 prints, writes the log and the checkpoints; its
// log lines add the share of time spent in the exchange ("comm", waiting for slower ranks
// included), which tells whether more ranks would still help (docs/scaling.md). A
// checkpoint's data position is a position in the global stream, so a run resumes on any number
// of ranks; rank 0 reads the checkpoint and sends it to the others (no shared disk needed).
// Dropout draws from a different seed on each rank, so their masks are not correlated. With
// several ranks, construct the Trainer and call resume() and run() on every rank: they exchange.
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

// Rank `rank`'s share of a batch among `ranks`: rows [rank·B/ranks, (rank+1)·B/ranks) (rounded
// down), with the columns that are padding in every one of those rows cut off (trailing target
// columns, leading source columns: sources are left-padded). The model masks padding, so the
// shards' summed losses and gradients equal the whole batch's. A rank may get no rows (B < ranks):
// then B is 0 and target_tokens 0.
Batch shard_batch(const Batch& batch, int rank, int ranks);

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
  // Sums the gradients of all ranks in place (one all-reduce of flat_grads_).
  void all_reduce_gradients();

  SequenceModel& model_;
  TrainConfig config_;
  BatchSource& train_;
  std::vector<Batch> valid_;
  TrainerOptions options_;
  NamedTensors params_;
  std::unique_ptr<Adam> optimizer_;
  std::unique_ptr<LrSchedule> schedule_;
  SmoothingVariant variant_;
  bool root_;   // rank 0: prints, writes the log and the checkpoints
  bool speak_;  // root_ and not options_.quiet
  std::vector<float> flat_grads_;  // every gradient back to back, then one has-a-gradient flag per parameter

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
  double window_comm_seconds_ = 0;  // spent in the ranks' exchanges, waiting for slower ranks included
  std::chrono::steady_clock::time_point window_start_;
};

}  // namespace payless
