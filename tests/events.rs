//! Our TensorBoard event files decoded independently of the writer: TF's record framing with
//! masked CRC-32C checked by hand, and the protobuf wire format parsed by a minimal reader.

mod common;

use tensorgraph::prelude::*;
use tensorgraph::summary::FileWriter;

fn masked(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    // TF spells the mask ((crc >> 15) | (crc << 17)) + 0xa282ead8.
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Splits an event file into records, checking both CRCs of each.
fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let len_bytes = &bytes[i..i + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        assert_eq!(u32::from_le_bytes(bytes[i + 8..i + 12].try_into().unwrap()), masked(len_bytes), "length CRC");
        let data = &bytes[i + 12..i + 12 + len];
        assert_eq!(u32::from_le_bytes(bytes[i + 12 + len..i + 16 + len].try_into().unwrap()), masked(data), "data CRC");
        out.push(data);
        i += 16 + len;
    }
    out
}

/// One protobuf field: number and either a varint/fixed value or bytes.
#[derive(Debug)]
enum Field<'a> {
    Int(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    v
}

fn fields(b: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i);
        let f = match key & 7 {
            0 => Field::Int(varint(b, &mut i)),
            1 => {
                i += 8;
                Field::Int(u64::from_le_bytes(b[i - 8..i].try_into().unwrap()))
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                i += n;
                Field::Bytes(&b[i - n..i])
            }
            5 => {
                i += 4;
                Field::Int(u64::from(u32::from_le_bytes(b[i - 4..i].try_into().unwrap())))
            }
            t => panic!("unexpected wire type {t}"),
        };
        out.push((key >> 3, f));
    }
    out
}

fn bytes_of<'a>(fs: &[(u64, Field<'a>)], n: u64) -> Vec<&'a [u8]> {
    fs.iter()
        .filter(|(k, _)| *k == n)
        .filter_map(|(_, f)| if let Field::Bytes(b) = f { Some(*b) } else { None })
        .collect()
}

#[test]
fn event_files_decode_with_valid_framing_graph_and_scalars() {
    let g = Graph::new();
    let x = g.placeholder(DType::F32, [None, Some(4)]).named("X").unwrap();
    let logits = g.name_scope("dnn", || layers::dense(&x, 3, Some(nn::relu), "hidden1")).unwrap();
    let y = g.placeholder(DType::I64, [None]).named("y").unwrap();
    let loss = g
        .name_scope("loss", || {
            math::reduce_mean(&nn::sparse_softmax_cross_entropy_with_logits(&y, &logits).named("xent")?, None)
                .named("loss")
        })
        .unwrap();
    g.name_scope("train", || GradientDescent::new(0.1).minimize(&loss)).unwrap();

    let dir = common::scratch("events");
    let mut w = FileWriter::new(&dir, Some(&g)).unwrap();
    w.add_scalar("loss", 2.5, 10).unwrap();
    w.add_scalar("loss", 1.25, 20).unwrap();
    // Flushed: readable while the writer is still open.
    let bytes = std::fs::read(w.path()).unwrap();
    let recs = records(&bytes);
    assert_eq!(recs.len(), 4, "version, graph, two scalars");

    let first = fields(recs[0]);
    assert_eq!(bytes_of(&first, 3), [b"brain.Event:2".as_slice()], "file_version first");

    let graph_def = fields(bytes_of(&fields(recs[1]), 4)[0]);
    let nodes: Vec<Vec<(u64, Field)>> = bytes_of(&graph_def, 1).into_iter().map(fields).collect();
    let name = |n: &Vec<(u64, Field)>| String::from_utf8(bytes_of(n, 1)[0].to_vec()).unwrap();
    let op = |n: &Vec<(u64, Field)>| String::from_utf8(bytes_of(n, 2)[0].to_vec()).unwrap();
    let inputs = |n: &Vec<(u64, Field)>| -> Vec<String> {
        bytes_of(n, 3).into_iter().map(|b| String::from_utf8(b.to_vec()).unwrap()).collect()
    };
    let find = |s: &str| nodes.iter().find(|n| name(n) == s).unwrap_or_else(|| panic!("no node {s}"));
    assert_eq!(op(find("dnn/hidden1/MatMul")), "MatMul");
    assert_eq!(inputs(find("dnn/hidden1/MatMul")), ["X", "hidden1/kernel/read"]);
    assert_eq!(op(find("loss/xent")), "SparseSoftmaxCrossEntropyWithLogits");
    assert!(inputs(find("train/GradientDescent")).iter().all(|i| i.starts_with('^')), "control inputs as ^name");
    assert!(nodes
        .iter()
        .any(|n| name(n).starts_with("train/gradients/") && inputs(n).iter().any(|i| i == "loss/xent:1")));
    // Every node carries _output_shapes; the placeholder's first dimension is unknown (-1).
    let attrs = bytes_of(find("X"), 5);
    assert!(attrs.iter().any(|a| bytes_of(&fields(a), 1)[0] == b"_output_shapes"));
    assert!(attrs.iter().any(|a| bytes_of(&fields(a), 1)[0] == b"dtype"));

    let scalar = fields(recs[3]);
    assert!(scalar.iter().any(|(k, f)| *k == 2 && matches!(f, Field::Int(20))), "step 20");
    let value = fields(bytes_of(&fields(bytes_of(&scalar, 5)[0]), 1)[0]);
    assert_eq!(bytes_of(&value, 1)[0], b"loss");
    let simple = value.iter().find(|(k, _)| *k == 2).map(|(_, f)| if let Field::Int(v) = f { *v } else { 0 }).unwrap();
    assert_eq!(f32::from_bits(simple as u32), 1.25);
    std::fs::remove_dir_all(&dir).ok();
}
