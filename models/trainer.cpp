// See models/trainer.h.
#include "models/trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/autograd.h"
#include "core/distributed.h"
#include "core/serialize.h"
#include "optim/clip.h"

namespace payless {
namespace {

constexpr double kLn2 = 0.6931471805599453;

std::unique_ptr<LrSchedule> make_schedule(const TrainConfig& c) {
  if (c.lr_scheduler == "fixed") return std::make_unique<FixedSchedule>(c.lr);
  if (c.lr_scheduler == "cosine") {
    CosineOptions o;
    o.lr_max = c.lr;
    o.lr_min = c.min_lr;
    o.warmup_updates = c.warmup_updates;
    o.warmup_init_lr = c.warmup_init_lr;
    o.period = c.lr_period_updates;
    return std::make_unique<CosineSchedule>(o);
  }
  return std::make_unique<InverseSqrtSchedule>(c.lr, c.warmup_updates, c.warmup_init_lr);
}

void make_directory(const std::string& dir) {
  if (dir.empty()) fail("no checkpoint folder given");
  std::string partial;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') {
      if (!partial.empty() && mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
        fail(partial, ": cannot create the folder (", std::strerror(errno), ")");
    }
    if (i < dir.size()) partial += dir[i];
  }
}

// The whole file, for rank 0 to send to the other ranks.
std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, ": cannot open the checkpoint (", std::strerror(errno), ")");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail(path, ": cannot read the checkpoint");
  return bytes;
}

// Rank r > 0 draws its dropout masks from its own seed, so that the ranks' masks are independent
// (the same masks on every rank would make N ranks see N copies of one noise pattern). Rank 0
// keeps the run's seed: it is the one its checkpoints record.
void use_rank_seed() {
  const int rank = world_rank();
  if (rank == 0) return;
  Rng& rng = global_rng();
  rng.restore(mix64(rng.seed() + 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(rank)), rng.streams_used());
}

// Summed losses and target tokens of batches first, first + stride, ... (one rank's share).
struct LossSums {
  double loss = 0, nll = 0;  // natural log, summed over target tokens
  int64_t tokens = 0;
};

LossSums sum_losses(SequenceModel& model, const std::vector<Batch>& batches, size_t first, size_t stride,
                    float smoothing, SmoothingVariant variant) {
  NoGrad no_grad;
  const bool was_training = model.is_training();
  model.eval();
  LossSums s;
  for (size_t i = first; i < batches.size(); i += stride) {
    CrossEntropyResult r = model.loss(batches[i], smoothing, variant);
    s.loss += r.loss.item();
    s.nll += r.nll.item();
    s.tokens += r.tokens;
  }
  model.train(was_training);
  return s;
}

EvalResult to_eval_result(const LossSums& s) {
  EvalResult e;
  e.tokens = s.tokens;
  if (s.tokens > 0) {
    e.loss = s.loss / s.tokens / kLn2;
    e.nll_loss = s.nll / s.tokens / kLn2;
    e.ppl = std::pow(2.0, e.nll_loss);
  }
  return e;
}

// Rows [lo, hi) of a (B, W) id matrix, columns [c0, c1).
IdTensor slice_ids(const IdTensor& ids, int64_t lo, int64_t hi, int64_t c0, int64_t c1) {
  const int64_t W = ids.shape[1];
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>((hi - lo) * (c1 - c0)));
  for (int64_t r = lo; r < hi; ++r)
    out.insert(out.end(), ids.values.begin() + r * W + c0, ids.values.begin() + r * W + c1);
  return IdTensor(Shape{hi - lo, c1 - c0}, std::move(out));
}

std::string format_seconds(double s) {
  char buf[32];
  int total = static_cast<int>(s);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
  return buf;
}

}  // namespace

EvalResult evaluate(SequenceModel& model, const std::vector<Batch>& batches, float smoothing,
                    SmoothingVariant variant) {
  return to_eval_result(sum_losses(model, batches, 0, 1, smoothing, variant));
}

Batch shard_batch(const Batch& batch, int rank, int ranks) {
  PAYLESS_ASSERT(ranks >= 1 && rank >= 0 && rank < ranks);
  const int64_t B = batch.target.shape[0], T = batch.target.shape[1];
  const int64_t lo = B * rank / ranks, hi = B * (rank + 1) / ranks;
  // Target columns to keep: up to the last non-pad position of any kept row (right padding).
  int64_t T_keep = 0;
  int64_t tokens = 0;
  for (int64_t r = lo; r < hi; ++r)
    for (int64_t t = 0; t < T; ++t)
      if (batch.target.values[r * T + t] != kPadId || batch.decoder_input.values[r * T + t] != kPadId) {
        T_keep = std::max(T_keep, t + 1);
        tokens += batch.target.values[r * T + t] != kPadId;
      }
  Batch shard;
  shard.decoder_input = slice_ids(batch.decoder_input, lo, hi, 0, T_keep);  // (hi - lo, T_keep)
  shard.target = slice_ids(batch.target, lo, hi, 0, T_keep);                // (hi - lo, T_keep)
  shard.target_tokens = tokens;
  if (!batch.source.values.empty()) {
    // Source columns to keep: from the first non-pad position of any kept row (left padding).
    const int64_t S = batch.source.shape[1];
    int64_t first = S;
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t s = 0; s < first; ++s)
        if (batch.source.values[r * S + s] != kPadId) {
          first = s;
          break;
        }
    shard.source = slice_ids(batch.source, lo, hi, first, S);  // (hi - lo, S - first)
  }
  return shard;
}

Trainer::Trainer(SequenceModel& model, TrainConfig config, BatchSource& train,
                 std::vector<Batch> valid, TrainerOptions options)
    : model_(model),
      config_(std::move(config)),
      train_(train),
      valid_(std::move(valid)),
      options_(std::move(options)),
      params_(model.named_parameters()),
      variant_(config_.smoothing_variant == "current" ? SmoothingVariant::kCurrent
                                                      : SmoothingVariant::kPaper),
      root_(is_root()),
      speak_(root_ && !options_.quiet) {
  AdamOptions adam;
  adam.lr = config_.lr;
  adam.beta1 = config_.adam_beta1;
  adam.beta2 = config_.adam_beta2;
  adam.eps = config_.adam_eps;
  adam.weight_decay = config_.weight_decay;
  optimizer_ = std::make_unique<Adam>(params_, adam);
  schedule_ = make_schedule(config_);
  if (root_) make_directory(options_.save_dir);
  use_rank_seed();
}

std::string Trainer::checkpoint_path(const std::string& which) const {
  return options_.save_dir + "/checkpoint_" + which + ".safetensors";
}

void Trainer::log_event(nlohmann::json event) {
  if (!root_ || options_.log_path.empty()) return;
  std::ofstream log(options_.log_path, std::ios::app);
  if (!log) fail(options_.log_path, ": cannot append to the training log");
  log << event.dump() << "\n";
}

void Trainer::save(const std::string& path) {
  PAYLESS_ASSERT(root_);
  Checkpoint c;
  for (const auto& p : params_) c.tensors.push_back(p);
  for (const auto& s : optimizer_->state_tensors()) c.tensors.push_back(s);
  const double seconds =
      previous_seconds_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  c.metadata["model_config"] = model_config_to_json(model_.config()).dump();
  c.metadata["train_config"] = train_config_to_json(config_).dump();
  c.metadata["updates"] = std::to_string(updates_);
  c.metadata["epoch"] = std::to_string(train_.epoch());
  c.metadata["data_position"] = train_.position().dump();
  c.metadata["rng"] = nlohmann::json{{"seed", global_rng().seed()}, {"streams", global_rng().streams_used()}}.dump();
  c.metadata["optimizer"] = optimizer_->state_json().dump();
  c.metadata["best_valid_loss"] = nlohmann::json(best_valid_loss_).dump();
  c.metadata["train_seconds"] = nlohmann::json(seconds).dump();
  c.metadata["extra"] = options_.metadata.dump();
  save_checkpoint(path, c);
}

void Trainer::resume(const std::string& path) {
  Checkpoint c;
  if (world_size() == 1) {
    c = load_checkpoint(path);
  } else {
    // Rank 0 reads the file and sends its bytes: the other ranks need no access to its disk.
    std::string bytes;
    if (root_) bytes = read_file_bytes(path);
    broadcast(bytes);
    c = parse_checkpoint(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
  }
  auto json_of = [&](const std::string& key) {
    try {
      return nlohmann::json::parse(c.metadata_value(key));
    } catch (const nlohmann::json::exception& e) {
      fail(path, ": metadata '", key, "' is not valid JSON (", e.what(), ")");
    }
  };
  // The architecture must be the one we are training; everything else comes from the file.
  nlohmann::json saved_model = json_of("model_config");
  nlohmann::json ours = model_config_to_json(model_.config());
  if (saved_model != ours)
    fail(path, ": the checkpoint was trained with a different model config:\n  checkpoint: ",
         saved_model.dump(), "\n  now:        ", ours.dump());
  load_parameters(c, params_);
  optimizer_->load_state(c.tensors, json_of("optimizer"));
  updates_ = json_of("updates").get<int64_t>();
  train_.restore(json_of("data_position"));
  nlohmann::json rng = json_of("rng");
  global_rng().restore(rng["seed"].get<uint64_t>(), rng["streams"].get<uint64_t>());
  use_rank_seed();
  best_valid_loss_ = json_of("best_valid_loss").get<double>();
  previous_seconds_ = json_of("train_seconds").get<double>();
  // Numbered checkpoints already on disk count towards keep_last_checkpoints.
  numbered_checkpoints_.clear();
  for (int64_t u = 1; root_ && u <= updates_; ++u) {
    struct stat st;
    if (stat(checkpoint_path(std::to_string(u)).c_str(), &st) == 0) numbered_checkpoints_.push_back(u);
  }
  if (speak_)
    std::printf("resumed from %s at update %lld (epoch %lld)\n", path.c_str(),
                static_cast<long long>(updates_), static_cast<long long>(train_.epoch()));
}

void Trainer::all_reduce_gradients() {
  // Layout: every parameter's gradient in params_ order, then one flag per parameter (1 if this
  // rank has a gradient for it). The summed flag says whether any rank has one: a parameter that
  // took part on no rank stays without a gradient, so step() skips it as it would in one process.
  size_t total = 0;
  for (const auto& [name, p] : params_) total += static_cast<size_t>(p.numel());
  flat_grads_.resize(total + params_.size());
  float* at = flat_grads_.data();
  float* flags = flat_grads_.data() + total;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    const size_t n = static_cast<size_t>(p.numel());
    if (p.has_grad())
      std::memcpy(at, p.grad_ptr(), n * sizeof(float));
    else
      std::fill(at, at + n, 0.0f);
    flags[i] = p.has_grad() ? 1.0f : 0.0f;
    at += n;
  }
  all_reduce_sum(flat_grads_.data(), static_cast<int64_t>(flat_grads_.size()));
  at = flat_grads_.data();
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    const size_t n = static_cast<size_t>(p.numel());
    if (flags[i] > 0)
      std::memcpy(p.grad_ptr(), at, n * sizeof(float));
    else
      params_[i].second.zero_grad();
    at += n;
  }
}

bool Trainer::train_one_update() {
  const int ranks = world_size();
  double loss_sum = 0, nll_sum = 0;
  int64_t tokens = 0;
  bool finite = true;
  model_.train();
  for (int64_t i = 0; i < config_.update_freq; ++i) {
    Batch batch = train_.next();  // the global batch: every rank reads the same stream
    if (ranks > 1) {
      batch = shard_batch(batch, world_rank(), ranks);
      if (batch.target.shape[0] == 0) continue;  // fewer rows than ranks: nothing for this one
    }
    CrossEntropyResult r = model_.loss(batch, config_.label_smoothing, variant_);
    const double l = r.loss.item();
    if (!std::isfinite(l)) {
      finite = false;
      clear_tape();
      continue;
    }
    backward(r.loss);
    loss_sum += l;
    nll_sum += r.nll.item();
    tokens += r.tokens;
  }
  if (ranks > 1) {
    const auto exchange_start = std::chrono::steady_clock::now();
    // The small sums first: if any rank saw a non-finite loss, or no rank has a target token,
    // every rank skips this update without sending its gradients.
    double sums[4] = {loss_sum, nll_sum, static_cast<double>(tokens), finite ? 0.0 : 1.0};
    all_reduce_sum(sums, 4);
    loss_sum = sums[0];
    nll_sum = sums[1];
    tokens = std::llround(sums[2]);  // exact: a double holds integers up to 2^53
    finite = sums[3] == 0;
    if (finite && tokens > 0) all_reduce_gradients();
    window_comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - exchange_start).count();
  }
  // From here on every rank holds the same numbers, so every rank decides the same.
  double gnorm = 0;
  if (finite && tokens > 0) {
    multiply_grads(params_, 1.0 / static_cast<double>(tokens));
    gnorm = clip_grad_norm(params_, config_.clip_norm);
    finite = std::isfinite(gnorm);
  }
  if (!finite || tokens == 0) {
    optimizer_->zero_grad();
    ++bad_in_a_row_;
    if (root_)
      std::fprintf(stderr, "update %lld: %s, update skipped (%lld in a row, limit %lld)\n",
                   static_cast<long long>(updates_ + 1),
                   !finite ? "non-finite loss or gradient norm" : "no target tokens in the batches",
                   static_cast<long long>(bad_in_a_row_), static_cast<long long>(config_.max_bad_steps));
    log_event({{"type", "skipped"}, {"update", updates_ + 1}, {"in_a_row", bad_in_a_row_}});
    if (bad_in_a_row_ >= config_.max_bad_steps)
      fail("training diverged: ", bad_in_a_row_,
           " updates in a row had a non-finite loss or gradient norm; the last good state is in ",
           checkpoint_path("last"), " (try a lower lr or clip_norm)");
    return false;
  }
  bad_in_a_row_ = 0;
  const double lr = schedule_->lr_at(updates_);
  optimizer_->set_lr(lr);
  optimizer_->step();
  optimizer_->zero_grad();
  ++updates_;

  UpdateRecord record{updates_, loss_sum / tokens / kLn2, nll_sum / tokens / kLn2, gnorm, lr, tokens};
  history_.push_back(record);
  window_loss_ += loss_sum;
  window_nll_ += nll_sum;
  window_tokens_ += tokens;
  window_gnorm_ += gnorm;
  ++window_updates_;
  return true;
}

void Trainer::validate_and_maybe_save_best() {
  if (valid_.empty()) return;
  // Each rank evaluates every N-th batch; the sums make the same result on every rank.
  LossSums s = sum_losses(model_, valid_, static_cast<size_t>(world_rank()), static_cast<size_t>(world_size()),
                          config_.label_smoothing, variant_);
  if (world_size() > 1) {
    double sums[3] = {s.loss, s.nll, static_cast<double>(s.tokens)};
    all_reduce_sum(sums, 3);
    s = LossSums{sums[0], sums[1], std::llround(sums[2])};
  }
  last_valid_ = to_eval_result(s);
  const double wall = previous_seconds_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  log_event({{"type", "valid"}, {"update", updates_}, {"epoch", train_.epoch()}, {"loss", last_valid_.loss},
             {"nll_loss", last_valid_.nll_loss}, {"ppl", last_valid_.ppl}, {"tokens", last_valid_.tokens},
             {"wall", wall}});
  const bool best = last_valid_.loss < best_valid_loss_;
  if (speak_)
    std::printf("valid | update %6lld | loss %.3f | nll %.3f | ppl %.2f%s\n", static_cast<long long>(updates_),
                last_valid_.loss, last_valid_.nll_loss, last_valid_.ppl, best ? " | best so far" : "");
  std::fflush(stdout);
  if (best) {
    best_valid_loss_ = last_valid_.loss;
    if (root_) save(checkpoint_path("best"));
  }
}

void Trainer::save_periodic() {
  if (last_saved_update_ == updates_) return;  // the end of a run right after a periodic save
  last_saved_update_ = updates_;
  if (world_size() > 1) {
    // The ranks never exchange parameters, only gradient sums that MPI hands every rank
    // identically; so identical parameters are an invariant. Check it where it matters most:
    // before a checkpoint stands for every rank.
    Checksum64 sum;
    for (const auto& [name, p] : params_) sum.update(p.data(), static_cast<size_t>(p.numel()) * sizeof(float));
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(sum.finish()));
    check_same_on_all_ranks("parameter checksum at update " + std::to_string(updates_), hex,
                            "the ranks' parameters drifted apart; this is a bug in payless");
  }
  if (!root_) return;
  save(checkpoint_path("last"));
  if (config_.keep_last_checkpoints <= 0) return;
  save(checkpoint_path(std::to_string(updates_)));
  numbered_checkpoints_.push_back(updates_);
  while (static_cast<int64_t>(numbered_checkpoints_.size()) > config_.keep_last_checkpoints) {
    std::remove(checkpoint_path(std::to_string(numbered_checkpoints_.front())).c_str());
    numbered_checkpoints_.erase(numbered_checkpoints_.begin());
  }
}

bool Trainer::should_stop() const {
  if (config_.max_update > 0 && updates_ >= config_.max_update) return true;
  if (config_.max_epoch > 0 && train_.epoch() > config_.max_epoch) return true;
  if (config_.time_budget_minutes > 0) {
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (elapsed >= config_.time_budget_minutes * 60.0) return true;
  }
  return false;
}

void Trainer::run() {
  start_ = window_start_ = std::chrono::steady_clock::now();
  if (config_.max_update <= 0 && config_.max_epoch <= 0 && config_.time_budget_minutes <= 0)
    fail("training has no end: set max_update, max_epoch or time_budget_minutes");
  if (speak_)
    std::printf("training %lld parameters; %lld batches per epoch; update_freq %lld%s\n",
                static_cast<long long>(model_.num_parameters()),
                static_cast<long long>(train_.batches_per_epoch()), static_cast<long long>(config_.update_freq),
                world_size() > 1 ? ("; " + std::to_string(world_size()) + " ranks share each batch").c_str() : "");
  log_event({{"type", "start"}, {"update", updates_}, {"parameters", model_.num_parameters()},
             {"model_config", model_config_to_json(model_.config())}, {"train_config", train_config_to_json(config_)}});
  const bool terminal = speak_ && isatty(fileno(stdout)) && !launched_by_mpirun();
  while (true) {
    // Rank 0's clock decides the time budget for everyone: ranks that stopped apart would wait
    // for each other forever.
    const bool stop = world_size() > 1 ? broadcast_flag(should_stop()) : should_stop();
    if (stop) break;
    if (!train_one_update()) continue;
    if (updates_ % config_.log_interval == 0 || terminal) {
      const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - window_start_).count();
      const double wall = previous_seconds_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const double loss = window_loss_ / window_tokens_ / kLn2, nll = window_nll_ / window_tokens_ / kLn2;
      const double tokens_per_s = window_tokens_ / std::max(now, 1e-9);
      const UpdateRecord& last = history_.back();
      std::string left;
      if (config_.time_budget_minutes > 0 && config_.max_update <= 0) {
        left = " | left " + format_seconds(std::max(0.0, config_.time_budget_minutes * 60.0 - (wall - previous_seconds_)));
      } else if (config_.max_update > 0) {
        double per_update = (wall - previous_seconds_) / std::max<double>(1, history_.size());
        left = " | left " + format_seconds(per_update * (config_.max_update - updates_));
      }
      if (updates_ % config_.log_interval == 0) {
        nlohmann::json event = {{"type", "train"}, {"update", updates_}, {"epoch", train_.epoch()}, {"loss", loss},
                                {"nll_loss", nll}, {"ppl", std::pow(2.0, nll)}, {"lr", last.lr},
                                {"gnorm", window_gnorm_ / window_updates_}, {"tokens_per_s", tokens_per_s}, {"wall", wall}};
        std::string comm;
        if (world_size() > 1) {
          const double fraction = window_comm_seconds_ / std::max(now, 1e-9);
          event["ranks"] = world_size();
          event["comm_fraction"] = fraction;
          comm = " | comm " + std::to_string(static_cast<int>(std::lround(100 * fraction))) + "%";
        }
        log_event(event);
        if (speak_)
          std::printf("%supdate %6lld | epoch %3lld | loss %.3f | ppl %8.2f | lr %.3e | gnorm %.3f | %6.0f tok/s%s | %s%s\n",
                      terminal ? "\r\033[K" : "", static_cast<long long>(updates_),
                      static_cast<long long>(train_.epoch()), loss, std::pow(2.0, nll), last.lr,
                      window_gnorm_ / window_updates_, tokens_per_s, comm.c_str(), format_seconds(wall).c_str(),
                      left.c_str());
        std::fflush(stdout);  // a log line is progress: show it now, also when stdout is a file or pipe
        window_loss_ = window_nll_ = window_gnorm_ = window_comm_seconds_ = 0;
        window_tokens_ = window_updates_ = 0;
        window_start_ = std::chrono::steady_clock::now();
      } else {
        // On a terminal, a progress line between log lines, redrawn in place.
        std::printf("\r\033[Kupdate %6lld | loss %.3f | %6.0f tok/s | %s%s", static_cast<long long>(updates_), loss,
                    tokens_per_s, format_seconds(wall).c_str(), left.c_str());
        std::fflush(stdout);
      }
    }
    if (config_.validate_interval_updates > 0 && updates_ % config_.validate_interval_updates == 0)
      validate_and_maybe_save_best();
    if (config_.save_interval_updates > 0 && updates_ % config_.save_interval_updates == 0) save_periodic();
  }
  if (terminal) std::printf("\n");
  validate_and_maybe_save_best();
  save_periodic();
  log_event({{"type", "end"}, {"update", updates_}, {"epoch", train_.epoch()}});
}

}  // namespace payless
