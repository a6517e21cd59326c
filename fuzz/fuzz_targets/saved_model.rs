//! A SavedModel directory: the input is the variables' index and data shard, then
//! `saved_model.pb` (see `graphopt_fuzz::sections`; with fewer parts, the last is the model),
//! written to a scratch directory, then read, described (`graphopt inspect`) and frozen
//! (`graphopt freeze`) with the default tag set and signature and with the model's own first
//! ones.
#![no_main]

use graphopt_core::freeze;
use graphopt_core::freeze::saved_model::{self, SavedModelOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The small variable files first, so that mutations of the graph do not move them.
    let files = graphopt_fuzz::sections(data, 3);
    let (index, shard, model) = match files[..] {
        [model] => (None, None, model),
        [index, model] => (Some(index), None, model),
        [index, shard, model, ..] => (Some(index), Some(shard), model),
        [] => return,
    };
    let dir = graphopt_fuzz::scratch_dir("saved_model");
    let variables = dir.join("variables");
    graphopt_fuzz::put(&dir.join("saved_model.pb"), Some(model));
    graphopt_fuzz::put(&variables.join("variables.index"), index);
    graphopt_fuzz::put(&variables.join("variables.data-00000-of-00001"), shard);
    graphopt_fuzz::budget().enter(|| {
        let Ok(model) = saved_model::read_saved_model(&dir) else {
            return;
        };
        let _ = saved_model::describe(&model);
        let _ = freeze::freeze_saved_model(&dir, &SavedModelOptions::default());
        let own = model.meta_graphs.first().and_then(|meta| {
            let tags = meta.meta_info_def.as_ref()?.tags.join(",");
            let signature = meta.signature_def.keys().next()?.clone();
            Some(SavedModelOptions {
                tag_set: tags,
                signature,
            })
        });
        if let Some(options) = own {
            let _ = freeze::freeze_saved_model(&dir, &options);
        }
    });
});
