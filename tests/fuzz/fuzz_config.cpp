// libFuzzer target for the JSON config reader (models/config.h): any bytes, read as a config file
// {"model": {...}, "train": {...}}, must either give validated configs or throw payless::Error
// (malformed JSON, unknown key, wrong type, impossible value) -- never crash, hang or accept a
// config that fails its own validation. What is accepted must survive a round trip through
// to_json unchanged. Built and run by scripts/fuzz.sh; seeds in corpus/fuzz_config/.
//
// fuzz-sources: models/config.cpp
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "models/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return 0;
  try {
    if (j.contains("model")) {
      payless::ModelConfig m = payless::model_config_from_json(j["model"], "fuzz.json: model");
      payless::validate(m, "accepted");  // accepted configs are valid...
      nlohmann::json again = payless::model_config_to_json(m);
      payless::ModelConfig back = payless::model_config_from_json(again, "again");
      if (payless::model_config_to_json(back) != again) std::abort();  // ...and round-trip
    }
    if (j.contains("train")) {
      payless::TrainConfig t = payless::train_config_from_json(j["train"], "fuzz.json: train");
      nlohmann::json again = payless::train_config_to_json(t);
      if (payless::train_config_to_json(payless::train_config_from_json(again, "again")) != again) std::abort();
    }
    if (j.contains("overrides") && j["overrides"].is_array()) {
      std::vector<std::string> overrides;
      for (const auto& o : j["overrides"])
        if (o.is_string()) overrides.push_back(o.get<std::string>());
      nlohmann::json target = nlohmann::json::object();
      payless::apply_overrides(target, overrides);
    }
  } catch (const payless::Error&) {
  }
  return 0;
}
