// See models/config.h. The presets follow spec §6.1 (the reference's registered architectures).
#include "models/config.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "core/error.h"

namespace payless {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Reads the fields of one JSON object, remembering which keys were used so that finish() can
// reject the rest by name. `where` is "file.json: model.decoder" and prefixes every error.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& j, std::string where) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) fail(where_, ": expected a JSON object, got ", j_.type_name());
  }

  template <typename T>
  void read(const std::string& key, T& field) {
    known_.push_back(key);
    auto it = j_.find(key);
    if (it == j_.end()) return;
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!it->is_boolean()) throw std::invalid_argument("a boolean (true/false)");
        field = it->template get<bool>();
      } else if constexpr (std::is_integral_v<T>) {
        if (!it->is_number_integer()) throw std::invalid_argument("a whole number");
        field = it->template get<T>();
      } else if constexpr (std::is_floating_point_v<T>) {
        if (!it->is_number()) throw std::invalid_argument("a number");
        field = it->template get<T>();
      } else if constexpr (std::is_same_v<T, std::string>) {
        if (!it->is_string()) throw std::invalid_argument("a string");
        field = it->template get<std::string>();
      } else {  // std::vector<int64_t>
        if (it->is_number_integer()) {
          field = {it->template get<int64_t>()};
        } else {
          if (!it->is_array()) throw std::invalid_argument("a list of whole numbers");
          field.clear();
          for (const auto& v : *it) {
            if (!v.is_number_integer()) throw std::invalid_argument("a list of whole numbers");
            field.push_back(v.template get<int64_t>());
          }
        }
      }
    } catch (const std::invalid_argument& expected) {
      fail(where_, ": key '", key, "' should be ", expected.what(), ", got ", it->dump());
    }
  }

  const nlohmann::json* child(const std::string& key) {
    known_.push_back(key);
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }

  void finish() const {
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (std::find(known_.begin(), known_.end(), it.key()) != known_.end()) continue;
      std::string best;
      size_t best_distance = 4;
      for (const std::string& k : known_) {
        size_t d = edit_distance(it.key(), k);
        if (d < best_distance) best_distance = d, best = k;
      }
      fail(where_, ": unknown key '", it.key(), "'",
           best.empty() ? std::string() : " (did you mean '" + best + "'?)");
    }
  }

 private:
  const nlohmann::json& j_;
  std::string where_;
  std::vector<std::string> known_;
};

void read_stack(const nlohmann::json& j, const std::string& where, StackConfig& s) {
  FieldReader r(j, where);
  r.read("block", s.block);
  r.read("embed_dim", s.embed_dim);
  r.read("conv_dim", s.conv_dim);
  r.read("ffn_dim", s.ffn_dim);
  r.read("layers", s.layers);
  r.read("heads", s.heads);
  r.read("kernel_sizes", s.kernel_sizes);
  r.read("glu", s.glu);
  r.read("normalize_before", s.normalize_before);
  r.read("learned_pos", s.learned_pos);
  r.read("max_positions", s.max_positions);
  r.finish();
}

nlohmann::json stack_to_json(const StackConfig& s) {
  return {{"block", s.block},       {"embed_dim", s.embed_dim},
          {"conv_dim", s.conv_dim}, {"ffn_dim", s.ffn_dim},
          {"layers", s.layers},     {"heads", s.heads},
          {"kernel_sizes", s.kernel_sizes}, {"glu", s.glu},
          {"normalize_before", s.normalize_before}, {"learned_pos", s.learned_pos},
          {"max_positions", s.max_positions}};
}

void validate_stack(const StackConfig& s, const std::string& where) {
  if (s.block != "dynamic" && s.block != "lightweight" && s.block != "transformer")
    fail(where, ".block: '", s.block, "' is not one of dynamic, lightweight, transformer");
  if (s.embed_dim <= 0) fail(where, ".embed_dim must be positive, got ", s.embed_dim);
  if (s.ffn_dim <= 0) fail(where, ".ffn_dim must be positive, got ", s.ffn_dim);
  if (s.layers <= 0) fail(where, ".layers must be positive, got ", s.layers);
  if (s.heads <= 0) fail(where, ".heads must be positive, got ", s.heads);
  if (s.max_positions <= 0) fail(where, ".max_positions must be positive, got ", s.max_positions);
  if (s.block == "transformer") {
    if (s.embed_dim % s.heads != 0)
      fail(where, ": embed_dim ", s.embed_dim, " is not divisible by heads ", s.heads);
  } else {
    if (s.channels() % s.heads != 0)
      fail(where, ": conv channels ", s.channels(), " are not divisible by heads ", s.heads);
    if (s.kernel_sizes.size() != 1 && static_cast<int64_t>(s.kernel_sizes.size()) != s.layers)
      fail(where, ".kernel_sizes has ", s.kernel_sizes.size(), " entries for ", s.layers,
           " layers (give one per layer, or one for all)");
    for (int64_t k : s.kernel_sizes)
      if (k <= 0) fail(where, ".kernel_sizes: kernel width must be positive, got ", k);
  }
}

void check_probability(float p, const std::string& key, const std::string& origin) {
  if (!(p >= 0.0f && p < 1.0f)) fail(origin, ": ", key, " must be in [0, 1), got ", p);
}

// The reference's base `lightconv` architecture (spec §6.1): 7 encoder / 6 decoder layers.
ModelConfig base_translation(int64_t d, int64_t f, int64_t heads, bool glu) {
  ModelConfig c;
  c.task = "translation";
  for (StackConfig* s : {&c.encoder, &c.decoder}) {
    s->embed_dim = d;
    s->ffn_dim = f;
    s->heads = heads;
    s->glu = glu;
  }
  c.encoder.layers = 7;
  c.encoder.kernel_sizes = {3, 7, 15, 31, 31, 31, 31};
  c.decoder.layers = 6;
  c.decoder.kernel_sizes = {3, 7, 15, 31, 31, 31};
  return c;
}

ModelConfig lm_preset(const std::string& block, int64_t d, int64_t f, int64_t layers, int64_t heads,
                      std::vector<int64_t> kernels) {
  ModelConfig c;
  c.task = "lm";
  c.decoder.block = block;
  c.decoder.embed_dim = d;
  c.decoder.ffn_dim = f;
  c.decoder.layers = layers;
  c.decoder.heads = heads;
  c.decoder.kernel_sizes = std::move(kernels);
  c.decoder.normalize_before = true;  // the reference forces pre-norm for LMs (spec §4.7)
  c.decoder.glu = true;
  // Untied output embedding, the reference's default for lightconv_lm: with a tied one and no
  // final LayerNorm, sqrt(d)·E[x] makes the first predictions confidently repeat the input.
  c.share_decoder_input_output_embed = false;
  return c;
}

// CPU-sized translators: the IWSLT shape (no GLU), 3+3 layers, K = 3, 7, 15, FFN 512, one joined
// embedding; d = 256 ("small", the architecture comparison) or d = 128 ("mini", the few-minute
// main job: about three times the updates per second). Only the block differs between the archs
// of one size, as in the paper's comparison.
ModelConfig mt_small_preset(const std::string& block, int64_t d = 256) {
  ModelConfig c = base_translation(d, 512, 4, false);
  c.encoder.block = c.decoder.block = block;
  c.encoder.layers = c.decoder.layers = 3;
  c.encoder.kernel_sizes = c.decoder.kernel_sizes = {3, 7, 15};
  c.dropout = 0.2f;
  c.attention_dropout = 0.1f;
  if (block != "transformer") c.weight_dropout = 0.1f;
  c.input_dropout = 0.0f;
  c.share_all_embeddings = true;
  return c;
}

const std::map<std::string, std::function<ModelConfig()>>& presets() {
  static const std::map<std::string, std::function<ModelConfig()>> table = {
      // ---- the reference's registered architectures (spec §6.1)
      {"lightconv", [] { return base_translation(512, 2048, 8, true); }},
      {"lightconv_wmt_en_de", [] { return base_translation(512, 2048, 8, true); }},
      {"lightconv_iwslt_de_en",
       [] {
         ModelConfig c = base_translation(512, 1024, 4, false);
         c.attention_dropout = 0.1f;
         c.weight_dropout = 0.1f;
         c.input_dropout = 0.0f;
         return c;
       }},
      {"lightconv_wmt_en_de_big",
       [] {
         ModelConfig c = base_translation(1024, 4096, 16, true);
         c.dropout = 0.3f;
         c.attention_dropout = 0.1f;
         c.weight_dropout = 0.1f;
         return c;
       }},
      {"lightconv_wmt_en_fr_big",
       [] {
         ModelConfig c = base_translation(1024, 4096, 16, true);
         c.dropout = 0.1f;
         c.attention_dropout = 0.1f;
         c.weight_dropout = 0.1f;
         return c;
       }},
      {"lightconv_wmt_zh_en_big",
       [] {
         ModelConfig c = base_translation(1024, 4096, 16, true);
         c.dropout = 0.2f;
         c.attention_dropout = 0.2f;
         c.weight_dropout = 0.2f;
         return c;
       }},
      {"transformer_iwslt_de_en",
       [] {
         ModelConfig c = base_translation(512, 1024, 4, false);
         c.encoder.block = c.decoder.block = "transformer";
         c.encoder.layers = 6;
         c.share_decoder_input_output_embed = true;
         c.input_dropout = 0.0f;
         return c;
       }},
      {"transformer_wmt_en_de_big",
       [] {
         ModelConfig c = base_translation(1024, 4096, 16, false);
         c.encoder.block = c.decoder.block = "transformer";
         c.encoder.layers = 6;
         c.dropout = 0.3f;
         c.attention_dropout = 0.1f;
         c.input_dropout = 0.0f;
         return c;
       }},
      {"lightconv_lm", [] { return lm_preset("dynamic", 512, 2048, 6, 8, {3, 7, 15, 31, 31, 31}); }},
      {"lightconv_lm_gbw",
       [] {
         ModelConfig c = lm_preset("dynamic", 512, 4096, 6, 16, {3, 7, 15, 31, 31, 31});
         c.attention_dropout = 0.1f;
         c.weight_dropout = 0.1f;
         return c;
       }},
      // ---- CPU-sized language models: d=256, 6 layers, about the same parameter count each
      {"lm_dynamic_small", [] { return lm_preset("dynamic", 256, 1024, 6, 4, {3, 7, 15, 31, 31, 31}); }},
      {"lm_lightweight_small",
       [] { return lm_preset("lightweight", 256, 1024, 6, 4, {3, 7, 15, 31, 31, 31}); }},
      {"lm_transformer_small",
       [] {
         ModelConfig c = lm_preset("transformer", 256, 1024, 6, 4, {0});
         c.decoder.glu = false;
         c.input_dropout = 0.0f;
         return c;
       }},
      // ---- CPU-sized translation models (no GLU, as IWSLT; 3+3 layers)
      {"mt_dynamic_small", [] { return mt_small_preset("dynamic"); }},
      {"mt_lightweight_small", [] { return mt_small_preset("lightweight"); }},
      {"mt_transformer_small", [] { return mt_small_preset("transformer"); }},
      {"mt_dynamic_mini", [] { return mt_small_preset("dynamic", 128); }},
      {"mt_lightweight_mini", [] { return mt_small_preset("lightweight", 128); }},
      {"mt_transformer_mini", [] { return mt_small_preset("transformer", 128); }},
  };
  return table;
}

}  // namespace

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : presets()) names.push_back(name);
  return names;
}

ModelConfig model_preset(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string known;
    for (const auto& [n, make] : presets()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown architecture '", name, "' (known: ", known, ")");
  }
  ModelConfig c = it->second();
  c.arch = name;
  return c;
}

void validate(const ModelConfig& c, const std::string& origin) {
  if (c.task != "lm" && c.task != "translation")
    fail(origin, ": task '", c.task, "' is not one of lm, translation");
  validate_stack(c.decoder, origin + ": decoder");
  if (c.task == "translation") validate_stack(c.encoder, origin + ": encoder");
  check_probability(c.dropout, "dropout", origin);
  check_probability(c.attention_dropout, "attention_dropout", origin);
  if (c.weight_dropout >= 0) check_probability(c.weight_dropout, "weight_dropout", origin);
  check_probability(c.input_dropout, "input_dropout", origin);
  check_probability(c.relu_dropout, "relu_dropout", origin);
  if (c.share_all_embeddings) {
    if (c.task != "translation") fail(origin, ": share_all_embeddings needs task translation");
    if (c.encoder.embed_dim != c.decoder.embed_dim)
      fail(origin, ": share_all_embeddings needs equal encoder and decoder embed_dim (",
           c.encoder.embed_dim, " vs ", c.decoder.embed_dim, ")");
    if (c.source_vocab != 0 && c.target_vocab != 0 && c.source_vocab != c.target_vocab)
      fail(origin, ": share_all_embeddings needs one joined vocabulary (source ", c.source_vocab,
           " vs target ", c.target_vocab, " entries)");
  }
}

ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) fail(origin, ": the model config must be a JSON object");
  ModelConfig c;
  if (auto it = j.find("arch"); it != j.end()) {
    if (!it->is_string()) fail(origin, ": key 'arch' should be a string, got ", it->dump());
    c = model_preset(it->get<std::string>());
  }
  FieldReader r(j, origin);
  r.read("arch", c.arch);
  r.read("task", c.task);
  if (const nlohmann::json* e = r.child("encoder")) read_stack(*e, origin + ": encoder", c.encoder);
  if (const nlohmann::json* d = r.child("decoder")) read_stack(*d, origin + ": decoder", c.decoder);
  r.read("dropout", c.dropout);
  r.read("attention_dropout", c.attention_dropout);
  r.read("weight_dropout", c.weight_dropout);
  r.read("input_dropout", c.input_dropout);
  r.read("relu_dropout", c.relu_dropout);
  r.read("share_all_embeddings", c.share_all_embeddings);
  r.read("share_decoder_input_output_embed", c.share_decoder_input_output_embed);
  r.read("source_vocab", c.source_vocab);
  r.read("target_vocab", c.target_vocab);
  r.finish();
  if (c.share_all_embeddings) c.share_decoder_input_output_embed = true;
  validate(c, origin);
  return c;
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  nlohmann::json j = {{"arch", c.arch},
                      {"task", c.task},
                      {"decoder", stack_to_json(c.decoder)},
                      {"dropout", c.dropout},
                      {"attention_dropout", c.attention_dropout},
                      {"weight_dropout", c.weight_dropout},
                      {"input_dropout", c.input_dropout},
                      {"relu_dropout", c.relu_dropout},
                      {"share_all_embeddings", c.share_all_embeddings},
                      {"share_decoder_input_output_embed", c.share_decoder_input_output_embed},
                      {"source_vocab", c.source_vocab},
                      {"target_vocab", c.target_vocab}};
  if (c.task == "translation") j["encoder"] = stack_to_json(c.encoder);
  return j;
}

TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& origin) {
  TrainConfig c;
  FieldReader r(j, origin);
  r.read("seed", c.seed);
  r.read("lr", c.lr);
  r.read("adam_beta1", c.adam_beta1);
  r.read("adam_beta2", c.adam_beta2);
  r.read("adam_eps", c.adam_eps);
  r.read("weight_decay", c.weight_decay);
  r.read("lr_scheduler", c.lr_scheduler);
  r.read("warmup_updates", c.warmup_updates);
  r.read("warmup_init_lr", c.warmup_init_lr);
  r.read("min_lr", c.min_lr);
  r.read("lr_period_updates", c.lr_period_updates);
  r.read("clip_norm", c.clip_norm);
  r.read("label_smoothing", c.label_smoothing);
  r.read("smoothing_variant", c.smoothing_variant);
  r.read("max_tokens", c.max_tokens);
  r.read("tokens_per_sample", c.tokens_per_sample);
  r.read("max_source_len", c.max_source_len);
  r.read("max_target_len", c.max_target_len);
  r.read("update_freq", c.update_freq);
  r.read("max_update", c.max_update);
  r.read("max_epoch", c.max_epoch);
  r.read("time_budget_minutes", c.time_budget_minutes);
  r.read("log_interval", c.log_interval);
  r.read("validate_interval_updates", c.validate_interval_updates);
  r.read("save_interval_updates", c.save_interval_updates);
  r.read("keep_last_checkpoints", c.keep_last_checkpoints);
  r.read("max_bad_steps", c.max_bad_steps);
  r.finish();
  if (!(c.lr > 0)) fail(origin, ": lr must be positive, got ", c.lr);
  if (!(c.adam_beta1 >= 0 && c.adam_beta1 < 1 && c.adam_beta2 >= 0 && c.adam_beta2 < 1))
    fail(origin, ": adam betas must be in [0, 1)");
  if (c.lr_scheduler != "inverse_sqrt" && c.lr_scheduler != "fixed" && c.lr_scheduler != "cosine")
    fail(origin, ": lr_scheduler '", c.lr_scheduler, "' is not one of inverse_sqrt, fixed, cosine");
  if (c.smoothing_variant != "paper" && c.smoothing_variant != "current")
    fail(origin, ": smoothing_variant '", c.smoothing_variant, "' is not one of paper, current");
  check_probability(c.label_smoothing, "label_smoothing", origin);
  if (c.max_tokens <= 0) fail(origin, ": max_tokens must be positive, got ", c.max_tokens);
  if (c.tokens_per_sample <= 0) fail(origin, ": tokens_per_sample must be positive");
  if (c.update_freq <= 0) fail(origin, ": update_freq must be positive, got ", c.update_freq);
  if (c.warmup_updates < 0) fail(origin, ": warmup_updates must not be negative");
  if (c.log_interval <= 0) fail(origin, ": log_interval must be positive");
  if (c.max_bad_steps <= 0) fail(origin, ": max_bad_steps must be positive");
  return c;
}

nlohmann::json train_config_to_json(const TrainConfig& c) {
  return {{"seed", c.seed},
          {"lr", c.lr},
          {"adam_beta1", c.adam_beta1},
          {"adam_beta2", c.adam_beta2},
          {"adam_eps", c.adam_eps},
          {"weight_decay", c.weight_decay},
          {"lr_scheduler", c.lr_scheduler},
          {"warmup_updates", c.warmup_updates},
          {"warmup_init_lr", c.warmup_init_lr},
          {"min_lr", c.min_lr},
          {"lr_period_updates", c.lr_period_updates},
          {"clip_norm", c.clip_norm},
          {"label_smoothing", c.label_smoothing},
          {"smoothing_variant", c.smoothing_variant},
          {"max_tokens", c.max_tokens},
          {"tokens_per_sample", c.tokens_per_sample},
          {"max_source_len", c.max_source_len},
          {"max_target_len", c.max_target_len},
          {"update_freq", c.update_freq},
          {"max_update", c.max_update},
          {"max_epoch", c.max_epoch},
          {"time_budget_minutes", c.time_budget_minutes},
          {"log_interval", c.log_interval},
          {"validate_interval_updates", c.validate_interval_updates},
          {"save_interval_updates", c.save_interval_updates},
          {"keep_last_checkpoints", c.keep_last_checkpoints},
          {"max_bad_steps", c.max_bad_steps}};
}

void apply_overrides(nlohmann::json& j, const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) {
    size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) fail("override '", o, "' is not of the form key=value");
    std::string key = o.substr(0, eq), text = o.substr(eq + 1);
    nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded()) value = text;  // a bare word is a string
    nlohmann::json* target = &j;
    size_t start = 0;
    for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
      target = &(*target)[key.substr(start, dot - start)];
      if (!target->is_object() && !target->is_null())
        fail("override '", o, "': '", key.substr(0, dot), "' is not an object");
    }
    (*target)[key.substr(start)] = value;
  }
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, ": cannot open the file");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::parse_error& e) {
    // Turn the byte offset into line:column for the user.
    const std::string s = text.str();
    size_t line = 1, column = 1;
    for (size_t i = 0; i < std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, s.size()); ++i) {
      if (s[i] == '\n') ++line, column = 1;
      else ++column;
    }
    fail(path, ":", line, ":", column, ": malformed JSON (", e.what(), ")");
  }
}

}  // namespace payless
