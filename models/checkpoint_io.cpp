// See models/checkpoint_io.h.
#include "models/checkpoint_io.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace payless {

ModelConfig model_config_of(const Checkpoint& checkpoint) {
  const std::string& path = checkpoint.source;
  const std::string& text = checkpoint.metadata_value("model_config");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    fail(path, ": metadata 'model_config' is not a JSON object (is this a payless checkpoint?)");
  return model_config_from_json(j, path + ": metadata model_config");
}

std::unique_ptr<SequenceModel> load_model_from_checkpoint(const std::string& path) {
  Checkpoint checkpoint = load_checkpoint(path);
  ModelConfig config = model_config_of(checkpoint);
  std::unique_ptr<SequenceModel> model;
  try {
    // The seed does not matter: every parameter is overwritten below.
    model = build_model(config, /*seed=*/1);
  } catch (const Error& e) {
    fail(path, ": cannot build the model its config describes: ", e.what());
  }
  load_parameters(checkpoint, model->named_parameters());
  model->eval();
  return model;
}

}  // namespace payless
