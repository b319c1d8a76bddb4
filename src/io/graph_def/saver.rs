//! TF1's `tf.train.Saver()` as the nodes it adds to a graph, and the `SaverDef` naming them: so
//! `tf.train.import_meta_graph` on a graph file of ours rebuilds a `Saver` that saves and
//! restores its variables (TF's V2 bundle, one shard), as it does for TF's own files.

use super::export::{const_def, node_def};
use super::{attr, ty};
use crate::proto::tf::{Attr, AttrValue, GraphDef, ListValue, NodeDef, SaverDef, TensorShapeProto};
use crate::{DType, Graph, Value};

/// Adds the saver's nodes for `g`'s global variables to `def` (under `save`, or `save_1`...
/// when taken) and returns their `SaverDef`; `None` without variables.
pub(crate) fn add_saver(g: &Graph, def: &mut GraphDef) -> Option<SaverDef> {
    let mut vars: Vec<(String, DType)> = g.global_variables().iter().map(|v| (v.name(), v.value().dtype())).collect();
    if vars.is_empty() {
        return None;
    }
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let taken = |s: &str| def.node.iter().any(|n| n.name == s || n.name.starts_with(&format!("{s}/")));
    let scope = std::iter::once("save".to_string()).chain((1..).map(|k| format!("save_{k}"))).find(|s| !taken(s))?;
    let at = |name: &str| format!("{scope}/{name}");
    let strings = |v: Vec<&str>| {
        let bytes: Vec<Vec<u8>> = v.into_iter().map(|s| s.as_bytes().to_vec()).collect();
        Value::from(ndarray::Array1::from(bytes).into_dyn())
    };
    let names = strings(vars.iter().map(|(n, _)| n.as_str()).collect());
    let slices = strings(vec![""; vars.len()]);
    let dtypes = attr(Attr::List(ListValue {
        r#type: vars.iter().map(|(_, d)| crate::proto::dtype_enum(*d)).collect(),
        ..Default::default()
    }));
    let scalar_shape = attr(Attr::Shape(TensorShapeProto::default()));
    let no_attrs: Vec<(&str, AttrValue)> = vec![];
    let mut nodes: Vec<NodeDef> = vec![
        const_def(at("filename/input"), &Value::from(ndarray::arr0(b"model".to_vec()).into_dyn())),
        node_def(
            at("Const"),
            "PlaceholderWithDefault",
            vec![at("filename/input")],
            vec![("dtype", ty(DType::String)), ("shape", scalar_shape)],
        ),
    ];
    for op in ["SaveV2", "RestoreV2"] {
        nodes.push(const_def(at(&format!("{op}/tensor_names")), &names));
        nodes.push(const_def(at(&format!("{op}/shape_and_slices")), &slices));
    }
    let mut save_inputs = vec![at("Const"), at("SaveV2/tensor_names"), at("SaveV2/shape_and_slices")];
    save_inputs.extend(vars.iter().map(|(n, _)| n.clone()));
    nodes.push(node_def(at("SaveV2"), "SaveV2", save_inputs, vec![("dtypes", dtypes.clone())]));
    let save_done = vec![at("Const"), format!("^{}", at("SaveV2"))];
    nodes.push(node_def(at("control_dependency"), "Identity", save_done, vec![("T", ty(DType::String))]));
    let restore_inputs = vec![at("Const"), at("RestoreV2/tensor_names"), at("RestoreV2/shape_and_slices")];
    nodes.push(node_def(at("RestoreV2"), "RestoreV2", restore_inputs, vec![("dtypes", dtypes)]));
    let mut assigns = Vec::with_capacity(vars.len());
    for (k, (name, dtype)) in vars.iter().enumerate() {
        let assign = if k == 0 { at("Assign") } else { at(&format!("Assign_{k}")) };
        let restored = if k == 0 { at("RestoreV2") } else { format!("{}:{k}", at("RestoreV2")) };
        let attrs =
            vec![("T", ty(*dtype)), ("validate_shape", attr(Attr::B(true))), ("use_locking", attr(Attr::B(true)))];
        nodes.push(node_def(assign.clone(), "Assign", vec![name.clone(), restored], attrs));
        assigns.push(format!("^{assign}"));
    }
    nodes.push(node_def(at("restore_all"), "NoOp", assigns, no_attrs));
    def.node.extend(nodes);
    Some(SaverDef {
        filename_tensor_name: format!("{}:0", at("Const")),
        save_tensor_name: format!("{}:0", at("control_dependency")),
        restore_op_name: at("restore_all"),
        max_to_keep: 5,
        sharded: false,
        keep_checkpoint_every_n_hours: 10000.0,
        version: 2,
    })
}

/// Removes a saver's nodes (everything under the scope of its restore op: `save/...`) from
/// `def`: tensorgraph's `Saver` reads and writes checkpoints itself.
pub(crate) fn strip_saver(def: &mut GraphDef, saver: &SaverDef) {
    let Some((scope, _)) = saver.restore_op_name.rsplit_once('/') else { return };
    let prefix = format!("{scope}/");
    def.node.retain(|n| !n.name.starts_with(&prefix));
}
