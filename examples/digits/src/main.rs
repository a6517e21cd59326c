//! Classifies scikit-learn's held-out 8x8 digits with the model graphopt optimized at build
//! time, and prints the accuracy next to TensorFlow's on the same images.
//!
//! `cargo run -p digits`

graphopt::include_model!(digits);

use graphopt::eval::Model;

const IMAGES: &[u8] = include_bytes!("../data/test_images.bin");
const LABELS: &[u8] = include_bytes!("../data/test_labels.bin");
const TENSORFLOW: &str = include_str!("../data/tensorflow.json");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = Model::from_bytes(digits::GRAPH_DEF)?;
    let count = LABELS.len();
    // Pixels are 0..16; the model was trained on pixel / 16.
    let pixels: Vec<f32> = IMAGES.iter().map(|&p| f32::from(p) / 16.0).collect();
    let outputs = model.run_f32(
        &[(digits::inputs::IMAGE, &pixels, &[count, 8, 8, 1])],
        &[digits::outputs::PROBS],
    )?;
    let (probs, shape) = outputs.into_iter().next().ok_or("no output")?;
    let classes = shape.last().copied().unwrap_or(10).max(1);
    let correct = probs
        .chunks(classes)
        .zip(LABELS)
        .filter(|(row, &label)| {
            let best =
                row.iter().enumerate().fold(
                    (0, f32::MIN),
                    |best, (i, &p)| if p > best.1 { (i, p) } else { best },
                );
            best.0 == usize::from(label)
        })
        .count();
    let accuracy = correct as f64 / count as f64;
    let tensorflow = TENSORFLOW
        .split("\"frozen_graph_accuracy\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|v| v.trim().parse::<f64>().ok());
    // What build.rs did, from the module's constants.
    println!(
        "optimized at build time: {} nodes, {} bytes -> {} nodes, {} bytes, embedded (sha256 {})",
        digits::SOURCE_NODE_COUNT,
        digits::SOURCE_SIZE_BYTES,
        digits::NODE_COUNT,
        digits::GRAPH_DEF.len(),
        digits::SHA256
    );
    println!("transforms: {}", digits::TRANSFORMS);
    println!(
        "input {} {:?} {}, output {} {:?} {}",
        digits::inputs::IMAGE.tensor,
        digits::inputs::IMAGE.dtype,
        digits::inputs::IMAGE.shape,
        digits::outputs::PROBS.tensor,
        digits::outputs::PROBS.dtype,
        digits::outputs::PROBS.shape
    );
    println!(
        "accuracy on {count} held-out digits: {:.2}% ({correct}/{count})",
        accuracy * 100.0
    );
    if let Some(tf) = tensorflow {
        println!(
            "TensorFlow's accuracy on the same images: {:.2}%",
            tf * 100.0
        );
    }
    Ok(())
}
