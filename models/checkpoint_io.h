// Loading a trained model from a checkpoint written by the Trainer (models/trainer.h), for the
// commands that use a model without training it (eval, sample, translate, generate).
//
// A checkpoint carries its model's config as the JSON string metadata "model_config"; the model
// is rebuilt from that config (build_model) and its parameters are copied in (load_parameters,
// which checks every name and shape). The optimizer's state in the file is ignored here.
// Not here: the file format (core/serialize.h), resuming training (Trainer::resume).
#pragma once

#include <memory>
#include <string>

#include "core/serialize.h"
#include "models/sequence_model.h"

namespace payless {

// The model stored in `path`, in eval mode (no dropout). Every error names the file: unreadable
// or damaged checkpoint, missing or malformed "model_config", a config this build does not
// know, parameters that do not fit the config.
std::unique_ptr<SequenceModel> load_model_from_checkpoint(const std::string& path);

// The config recorded in a loaded checkpoint's metadata; errors name checkpoint.source.
ModelConfig model_config_of(const Checkpoint& checkpoint);

}  // namespace payless
