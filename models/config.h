// Model and training configuration: plain structs, read from JSON with every key checked.
//
// A config file names an architecture preset ("arch") and may override any field; the command
// line may override again (`--set dropout=0.3`). A key that no field has, a value of the wrong
// type or an impossible value is an error that names the key (and the file), with the closest
// known key suggested for a misspelling. The presets are the reference's registered
// architectures (spec §6.1) plus CPU-sized ones; `payless train --help` lists them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace payless {

// One side (encoder or decoder) of a model.
struct StackConfig {
  std::string block = "dynamic";  // "dynamic", "lightweight" or "transformer"
  int64_t embed_dim = 512;        // d
  int64_t conv_dim = 0;           // C; 0 means = embed_dim
  int64_t ffn_dim = 2048;         // F
  int64_t layers = 6;
  int64_t heads = 8;              // conv heads H and attention heads alike
  std::vector<int64_t> kernel_sizes = {3, 7, 15, 31, 31, 31};  // one per layer, or one for all
  bool glu = true;
  bool normalize_before = false;  // pre-norm when true
  bool learned_pos = false;
  int64_t max_positions = 1024;

  int64_t channels() const { return conv_dim > 0 ? conv_dim : embed_dim; }
  int64_t kernel_size(int64_t layer) const {
    return kernel_sizes.size() == 1 ? kernel_sizes[0] : kernel_sizes[layer];
  }
};

struct ModelConfig {
  std::string arch;               // the preset this started from, for the record
  std::string task = "lm";        // "lm" (decoder only) or "translation"
  StackConfig encoder;            // unused for "lm"
  StackConfig decoder;
  float dropout = 0.1f;
  float attention_dropout = 0.0f;
  float weight_dropout = -1.0f;   // < 0 means = attention_dropout (the reference's rule)
  float input_dropout = 0.1f;
  float relu_dropout = 0.0f;
  bool share_all_embeddings = false;
  bool share_decoder_input_output_embed = false;
  int64_t source_vocab = 0;       // filled from the data's dictionaries
  int64_t target_vocab = 0;

  float effective_weight_dropout() const { return weight_dropout < 0 ? attention_dropout : weight_dropout; }
};

struct TrainConfig {
  uint64_t seed = 1;
  double lr = 5e-4;
  double adam_beta1 = 0.9, adam_beta2 = 0.98, adam_eps = 1e-8;
  double weight_decay = 0.0;
  std::string lr_scheduler = "inverse_sqrt";  // "inverse_sqrt", "fixed", "cosine"
  int64_t warmup_updates = 4000;
  double warmup_init_lr = 1e-7;
  double min_lr = 1e-9;                       // cosine floor
  int64_t lr_period_updates = 20000;          // cosine period
  double clip_norm = 0.0;                     // 0: no clipping (the paper's recipes)
  float label_smoothing = 0.1f;
  std::string smoothing_variant = "paper";    // "paper" (ε/V) or "current" (ε/(V-1))
  int64_t max_tokens = 4000;                  // tokens per batch
  int64_t tokens_per_sample = 512;            // LM block length
  int64_t max_source_len = 1024, max_target_len = 1024;  // longer translation pairs are skipped
  int64_t update_freq = 1;
  int64_t max_update = 0;                     // 0: no limit
  int64_t max_epoch = 0;                      // 0: no limit
  double time_budget_minutes = 0;             // 0: no limit; stops cleanly with a checkpoint
  int64_t log_interval = 50;
  int64_t validate_interval_updates = 1000;
  int64_t save_interval_updates = 1000;
  int64_t keep_last_checkpoints = 3;
  int64_t max_bad_steps = 5;                  // consecutive non-finite updates before giving up
};

// Names of the registered presets, and the config each stands for.
std::vector<std::string> model_preset_names();
ModelConfig model_preset(const std::string& name);

// Reads {"arch": ..., overrides...} (or a full config) from JSON; `origin` names the file for
// errors. The result is validated.
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& origin);
nlohmann::json model_config_to_json(const ModelConfig& c);
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& origin);
nlohmann::json train_config_to_json(const TrainConfig& c);

// Applies "key=value" overrides (dotted keys for nested fields: "decoder.layers=4") to a JSON
// object before it is read; the value is parsed as JSON, or taken as a string if it is not JSON.
void apply_overrides(nlohmann::json& j, const std::vector<std::string>& overrides);

// Reads a JSON file, with parse errors reported as file:line:column.
nlohmann::json read_json_file(const std::string& path);

void validate(const ModelConfig& c, const std::string& origin);

}  // namespace payless
