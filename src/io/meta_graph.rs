//! Graph files as TensorFlow's `MetaGraphDef` (`.meta`): the whole graph with its variables
//! (TF's `VariableDef`s in the `variables` and `trainable_variables` collections), its
//! collections (tensor and op names) and signatures (`serving_default`), to be imported by a
//! program that never saw the code that built it, here or in TensorFlow
//! (`tf.compat.v1.train.import_meta_graph`, for graphs whose ops all have a TF form).

use super::graph_def::{add_saver, from_graph_def, shape_proto, strip_saver, to_graph_def_with_private_ops};
use crate::proto::dtype_enum;
use crate::proto::tf::{
    BytesList, Collection, CollectionDef, Int64List, MetaGraphDef, MetaInfoDef, SignatureDef, StringList, TensorInfo,
    VariableDef,
};
use crate::{Error, Graph, Result, Tensor};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tensorgraph_graph::{Endpoint, NodeIndex, VariableInfo};

/// The collection that keeps the graph-level seed (TF does not store one).
const SEED: &str = "tensorgraph_graph_seed";
const VARIABLES: &str = "variables";
const TRAINABLE: &str = "trainable_variables";
/// What the files of tensorgraph's own former format (gzip'd bincode) begin with.
const OLD_MAGIC: &[u8] = b"TGRAPH\0\x01";

/// A model's named inputs and outputs, as TF's `SignatureDef` (`serving_default` for
/// TensorFlow Serving's predict API).
#[derive(Clone, Debug, Default)]
pub struct Signature {
    pub inputs: Vec<(String, Tensor)>,
    pub outputs: Vec<(String, Tensor)>,
}

fn tensor_info(t: &Tensor) -> TensorInfo {
    let spec = t.spec();
    TensorInfo { name: t.name(), dtype: dtype_enum(spec.dtype), tensor_shape: Some(shape_proto(&spec.shape)) }
}

fn names(list: Vec<String>) -> CollectionDef {
    CollectionDef { kind: Some(Collection::NodeList(StringList { value: list })) }
}

/// `g` as a `MetaGraphDef`, with `signatures` (name, signature).
pub fn meta_graph_def(g: &Graph, signatures: &[(&str, &Signature)]) -> Result<MetaGraphDef> {
    let mut graph_def = to_graph_def_with_private_ops(g)?;
    let saver_def = add_saver(g, &mut graph_def);
    let mut collection_def = HashMap::new();
    g.read(|d| {
        let name = |i: NodeIndex| d.node(i).name.clone();
        let tensor = |e: Endpoint| format!("{}:{}", d.node(e.node).name, e.slot);
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, eps) in &d.collections {
            lists.entry(key.clone()).or_default().extend(eps.iter().map(|&e| tensor(e)));
        }
        for (key, ops) in &d.op_collections {
            lists.entry(key.clone()).or_default().extend(ops.iter().map(|&i| name(i)));
        }
        collection_def.extend(lists.into_iter().map(|(k, v)| (k, names(v))));
        let variable_def = |v: &VariableInfo| {
            let init = d.node(v.initializer);
            VariableDef {
                variable_name: format!("{}:0", name(v.var)),
                initializer_name: init.name.clone(),
                snapshot_name: format!("{}:0", name(v.read)),
                is_resource: false,
                initial_value_name: init.inputs.get(1).map(|&e| tensor(e)).unwrap_or_default(),
                trainable: v.trainable,
            }
            .encode_to_vec()
        };
        let all: Vec<Vec<u8>> = d.variables.iter().map(variable_def).collect();
        let trainable: Vec<Vec<u8>> = d.variables.iter().filter(|v| v.trainable).map(variable_def).collect();
        for (key, value) in [(VARIABLES, all), (TRAINABLE, trainable)] {
            if !value.is_empty() {
                collection_def
                    .insert(key.into(), CollectionDef { kind: Some(Collection::BytesList(BytesList { value })) });
            }
        }
        if let Some(seed) = d.seed() {
            let seed = CollectionDef { kind: Some(Collection::Int64List(Int64List { value: vec![seed as i64] })) };
            collection_def.insert(SEED.into(), seed);
        }
    });
    let signature_def = signatures
        .iter()
        .map(|(key, s)| {
            let map = |ts: &[(String, Tensor)]| ts.iter().map(|(k, t)| (k.clone(), tensor_info(t))).collect();
            let def = SignatureDef {
                inputs: map(&s.inputs),
                outputs: map(&s.outputs),
                method_name: "tensorflow/serving/predict".into(),
            };
            (key.to_string(), def)
        })
        .collect();
    let meta_info_def =
        MetaInfoDef { meta_graph_version: String::new(), tags: vec![], tensorflow_version: String::new() };
    Ok(MetaGraphDef {
        meta_info_def: Some(meta_info_def),
        graph_def: Some(graph_def),
        saver_def,
        collection_def,
        signature_def,
    })
}

/// Writes `g` to `path` as a `MetaGraphDef` (nodes with their attributes, constants and where
/// each was built, variables, collections, the graph seed), atomically.
pub fn export_meta_graph(g: &Graph, path: impl AsRef<Path>) -> Result<()> {
    export_meta_graph_with(g, path, &[])
}

/// [`export_meta_graph`] with signatures, such as `("serving_default", &Signature { inputs:
/// vec![("X".into(), x)], outputs: vec![("logits".into(), logits)] })`.
pub fn export_meta_graph_with(g: &Graph, path: impl AsRef<Path>, signatures: &[(&str, &Signature)]) -> Result<()> {
    super::write_atomic(path.as_ref(), &meta_graph_def(g, signatures)?.encode_to_vec())
}

/// Reads a graph written by [`export_meta_graph`] (or by TF) into a fresh [`Graph`]; look its
/// tensors up by name ([`Graph::tensor_by_name`]) or collection ([`Graph::get_collection`]).
///
/// ```
/// use tensorgraph::prelude::*;
/// use tensorgraph::io::{export_meta_graph, import_meta_graph};
/// # fn main() -> tensorgraph::Result<()> {
/// let g = Graph::new();
/// let x = g.placeholder(DType::F32, [None]).named("x")?;
/// let y = g.name_scope("out", || math::square(&x))?;
/// g.add_to_collection("outputs", &y);
/// let path = std::env::temp_dir().join(format!("tg-meta-doc-{}.meta", std::process::id()));
/// export_meta_graph(&g, &path)?;
/// let h = import_meta_graph(&path)?;
/// let y2 = h.get_collection("outputs").remove(0);
/// assert_eq!(y2.name(), "out/Square:0");
/// let out = Session::new(&h)?.run(&[&y2], &[(&h.tensor_by_name("x:0")?, ndarray::array![3.0f32].into())])?;
/// assert_eq!(out[0].to_f64_vec(), [9.0]);
/// # std::fs::remove_file(&path).ok();
/// # Ok(()) }
/// ```
pub fn import_meta_graph(path: impl AsRef<Path>) -> Result<Graph> {
    Ok(read_meta_graph(path)?.0)
}

/// [`import_meta_graph`], with the file's signatures by name.
pub fn read_meta_graph(path: impl AsRef<Path>) -> Result<(Graph, BTreeMap<String, Signature>)> {
    let path = path.as_ref();
    import_meta_graph_bytes(&super::read_file(path)?, path)
}

/// [`read_meta_graph`] from the bytes of a file (`path` only names it in errors). Every node
/// is rebuilt through the graph builder (inputs, names and shapes checked) and every variable,
/// collection and signature entry checked, so a damaged or forged file is an error.
pub fn import_meta_graph_bytes(bytes: &[u8], path: &Path) -> Result<(Graph, BTreeMap<String, Signature>)> {
    let bad = |detail: String| Error::BadFile { path: path.display().to_string(), detail };
    if bytes.starts_with(OLD_MAGIC) {
        return Err(bad("a graph file of tensorgraph's former format (.tgraph, before graphs were saved as TF's \
                        MetaGraphDef); export it again from the program that built it"
            .into()));
    }
    let meta = MetaGraphDef::decode(bytes).map_err(|e| bad(format!("not a MetaGraphDef protobuf ({e})")))?;
    let mut def = meta.graph_def.unwrap_or_default();
    if let Some(saver) = &meta.saver_def {
        strip_saver(&mut def, saver);
    }
    let g = from_graph_def(&def, &path.display().to_string())?;
    let op = |name: &str| g.operation_by_name(name.strip_suffix(":0").unwrap_or(name)).map(|o| o.node());
    let endpoint = |name: &str| g.tensor_by_name(name).map(|t| t.endpoint());
    let (mut variables, mut trainable) = (Vec::new(), std::collections::HashSet::new());
    let (mut collections, mut op_collections) = (BTreeMap::new(), BTreeMap::new());
    let mut seed = None;
    for (key, c) in &meta.collection_def {
        match (&c.kind, key.as_str()) {
            (Some(Collection::BytesList(list)), VARIABLES | TRAINABLE) => {
                for bytes in &list.value {
                    let v = VariableDef::decode(bytes.as_slice())
                        .map_err(|e| bad(format!("collection {key} holds a damaged VariableDef ({e})")))?;
                    if key == TRAINABLE {
                        trainable.insert(v.variable_name.clone());
                    } else {
                        let missing =
                            |what: &str, name: &str| bad(format!("variable {}: no {what} {name}", v.variable_name));
                        variables.push((
                            v.variable_name.clone(),
                            VariableInfo {
                                var: op(&v.variable_name).map_err(|_| missing("node", &v.variable_name))?,
                                read: op(&v.snapshot_name).map_err(|_| missing("read", &v.snapshot_name))?,
                                initializer: op(&v.initializer_name)
                                    .map_err(|_| missing("initializer", &v.initializer_name))?,
                                trainable: v.trainable,
                            },
                        ));
                    }
                }
            }
            (Some(Collection::Int64List(list)), SEED) => seed = list.value.first().map(|&s| s as u64),
            (Some(Collection::NodeList(list)), _) => {
                for name in &list.value {
                    let unknown = |_| bad(format!("collection {key} names {name}, which the graph lacks"));
                    if name.contains(':') {
                        collections.entry(key.clone()).or_insert_with(Vec::new).push(endpoint(name).map_err(unknown)?);
                    } else {
                        op_collections.entry(key.clone()).or_insert_with(Vec::new).push(op(name).map_err(unknown)?);
                    }
                }
            }
            // Collections of other kinds (TF's queue runners, cond contexts...) mean nothing here.
            _ => {}
        }
    }
    let variables = variables
        .into_iter()
        .map(|(name, mut v)| {
            v.trainable |= trainable.contains(&name);
            v
        })
        .collect();
    g.import_metadata(variables, collections, op_collections, seed).map_err(|e| bad(e.to_string()))?;
    let mut signatures = BTreeMap::new();
    for (key, s) in &meta.signature_def {
        let tensors = |m: &HashMap<String, TensorInfo>| -> Result<Vec<(String, Tensor)>> {
            let mut v: Vec<(String, Tensor)> = m
                .iter()
                .map(|(k, info)| {
                    let t = g
                        .tensor_by_name(&info.name)
                        .map_err(|_| bad(format!("signature {key} names {}", info.name)))?;
                    Ok((k.clone(), t))
                })
                .collect::<Result<_>>()?;
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(v)
        };
        signatures.insert(key.clone(), Signature { inputs: tensors(&s.inputs)?, outputs: tensors(&s.outputs)? });
    }
    Ok((g, signatures))
}
