// See models/trainer.h.
#include "models/trainer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/autograd.h"
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

std::string format_seconds(double s) {
  char buf[32];
  int total = static_cast<int>(s);
  std::snprintf(buf, sizeof buf, "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60);
  return buf;
}

}  // namespace

EvalResult evaluate(SequenceModel& model, const std::vector<Batch>& batches, float smoothing,
                    SmoothingVariant variant) {
  NoGrad no_grad;
  const bool was_training = model.is_training();
  model.eval();
  double loss = 0, nll = 0;
  int64_t tokens = 0;
  for (const Batch& b : batches) {
    CrossEntropyResult r = model.loss(b, smoothing, variant);
    loss += r.loss.item();
    nll += r.nll.item();
    tokens += r.tokens;
  }
  model.train(was_training);
  EvalResult e;
  e.tokens = tokens;
  if (tokens > 0) {
    e.loss = loss / tokens / kLn2;
    e.nll_loss = nll / tokens / kLn2;
    e.ppl = std::pow(2.0, e.nll_loss);
  }
  return e;
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
                                                      : SmoothingVariant::kPaper) {
  AdamOptions adam;
  adam.lr = config_.lr;
  adam.beta1 = config_.adam_beta1;
  adam.beta2 = config_.adam_beta2;
  adam.eps = config_.adam_eps;
  adam.weight_decay = config_.weight_decay;
  optimizer_ = std::make_unique<Adam>(params_, adam);
  schedule_ = make_schedule(config_);
  make_directory(options_.save_dir);
}

std::string Trainer::checkpoint_path(const std::string& which) const {
  return options_.save_dir + "/checkpoint_" + which + ".safetensors";
}

void Trainer::log_event(nlohmann::json event) {
  if (options_.log_path.empty()) return;
  std::ofstream log(options_.log_path, std::ios::app);
  if (!log) fail(options_.log_path, ": cannot append to the training log");
  log << event.dump() << "\n";
}

void Trainer::save(const std::string& path) {
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
  Checkpoint c = load_checkpoint(path);
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
  best_valid_loss_ = json_of("best_valid_loss").get<double>();
  previous_seconds_ = json_of("train_seconds").get<double>();
  // Numbered checkpoints already on disk count towards keep_last_checkpoints.
  numbered_checkpoints_.clear();
  for (int64_t u = 1; u <= updates_; ++u) {
    struct stat st;
    if (stat(checkpoint_path(std::to_string(u)).c_str(), &st) == 0) numbered_checkpoints_.push_back(u);
  }
  if (!options_.quiet)
    std::printf("resumed from %s at update %lld (epoch %lld)\n", path.c_str(),
                static_cast<long long>(updates_), static_cast<long long>(train_.epoch()));
}

bool Trainer::train_one_update() {
  double loss_sum = 0, nll_sum = 0;
  int64_t tokens = 0;
  bool finite = true;
  model_.train();
  for (int64_t i = 0; i < config_.update_freq; ++i) {
    Batch batch = train_.next();
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
  double gnorm = 0;
  if (finite && tokens > 0) {
    multiply_grads(params_, 1.0 / static_cast<double>(tokens));
    gnorm = clip_grad_norm(params_, config_.clip_norm);
    finite = std::isfinite(gnorm);
  }
  if (!finite || tokens == 0) {
    optimizer_->zero_grad();
    ++bad_in_a_row_;
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
  last_valid_ = evaluate(model_, valid_, config_.label_smoothing, variant_);
  const double wall = previous_seconds_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  log_event({{"type", "valid"}, {"update", updates_}, {"epoch", train_.epoch()}, {"loss", last_valid_.loss},
             {"nll_loss", last_valid_.nll_loss}, {"ppl", last_valid_.ppl}, {"tokens", last_valid_.tokens},
             {"wall", wall}});
  const bool best = last_valid_.loss < best_valid_loss_;
  if (!options_.quiet)
    std::printf("valid | update %6lld | loss %.3f | nll %.3f | ppl %.2f%s\n", static_cast<long long>(updates_),
                last_valid_.loss, last_valid_.nll_loss, last_valid_.ppl, best ? " | best so far" : "");
  std::fflush(stdout);
  if (best) {
    best_valid_loss_ = last_valid_.loss;
    save(checkpoint_path("best"));
  }
}

void Trainer::save_periodic() {
  if (last_saved_update_ == updates_) return;  // the end of a run right after a periodic save
  last_saved_update_ = updates_;
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
  if (!options_.quiet)
    std::printf("training %lld parameters; %lld batches per epoch; update_freq %lld\n",
                static_cast<long long>(model_.num_parameters()),
                static_cast<long long>(train_.batches_per_epoch()), static_cast<long long>(config_.update_freq));
  log_event({{"type", "start"}, {"update", updates_}, {"parameters", model_.num_parameters()},
             {"model_config", model_config_to_json(model_.config())}, {"train_config", train_config_to_json(config_)}});
  const bool terminal = !options_.quiet && isatty(fileno(stdout));
  while (!should_stop()) {
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
        log_event({{"type", "train"}, {"update", updates_}, {"epoch", train_.epoch()}, {"loss", loss},
                   {"nll_loss", nll}, {"ppl", std::pow(2.0, nll)}, {"lr", last.lr},
                   {"gnorm", window_gnorm_ / window_updates_}, {"tokens_per_s", tokens_per_s}, {"wall", wall}});
        if (!options_.quiet)
          std::printf("%supdate %6lld | epoch %3lld | loss %.3f | ppl %8.2f | lr %.3e | gnorm %.3f | %6.0f tok/s | %s%s\n",
                      terminal ? "\r\033[K" : "", static_cast<long long>(updates_),
                      static_cast<long long>(train_.epoch()), loss, std::pow(2.0, nll), last.lr,
                      window_gnorm_ / window_updates_, tokens_per_s, format_seconds(wall).c_str(), left.c_str());
        std::fflush(stdout);  // a log line is progress: show it now, also when stdout is a file or pipe
        window_loss_ = window_nll_ = window_gnorm_ = 0;
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
