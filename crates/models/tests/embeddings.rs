//! The BERT encoder's embeddings against llama.cpp's on the same GGUF, and against
//! sentence-transformers on the checkpoint it was converted from (fixtures written by
//! scripts/reference/embeddings.py): cosine similarity at least 0.999 for every input. An
//! input's vector is the same alone and in a batch, bit for bit. The decoder path (Qwen3-
//! Embedding's last-token pooling) against llama.cpp on a random-weight model of its layout. A
//! reranker's scores (rank pooling) against llama.cpp's and transformers'. XLM-RoBERTa (bge-m3's
//! architecture, random weights) against llama.cpp and transformers.

mod common;

use common::{fixture, model_path, random_model, MINILM, MINILM_RERANK, QWEN2, XLMR, XLMR_RERANK};
use ward_models::arch::bert::{normalize, Bert, EncoderWorkspace, Pooling};
use ward_models::gguf::GgufFile;
use ward_models::{Tokenizer, Workspace};

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The fixture cases' texts read as a caller's, and all of them embedded in one pass,
/// normalised (a vector per case, back to back).
fn embed_cases(
    bert: &Bert,
    tok: &Tokenizer,
    cases: &[serde_json::Value],
    ws: &mut EncoderWorkspace,
) -> (Vec<Vec<u32>>, Vec<f32>) {
    let ids: Vec<Vec<u32>> = cases
        .iter()
        .map(|c| {
            tok.encode_caller(c["text"].as_str().unwrap(), true, false, 512)
                .unwrap()
        })
        .collect();
    let inputs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let mut all = bert.embed(&inputs, ws).unwrap();
    normalize(&mut all, bert.params().n_embd);
    (ids, all)
}

#[test]
fn minilm_matches_llama_cpp_and_sentence_transformers() {
    let gguf = GgufFile::open(&model_path(MINILM)).unwrap();
    let bert = Bert::load(&gguf).unwrap();
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let p = bert.params();
    assert_eq!((p.n_embd, p.n_layer, p.pooling), (384, 6, Pooling::Mean));
    let cases = fixture("embeddings-minilm.json");
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 10);
    let mut ws = EncoderWorkspace::default();
    let (ids, all) = embed_cases(&bert, &tok, cases, &mut ws);
    let (mut worst_llama, mut worst_st, mut st_compared) = (1.0f64, 1.0f64, 0);
    for (i, case) in cases.iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let want_ids: Vec<u32> = floats(&case["ids"]).iter().map(|&x| x as u32).collect();
        assert_eq!(
            ids[i], want_ids,
            "{text:?}: token ids differ from llama.cpp's"
        );
        let got = &all[i * 384..][..384];
        let c = cosine(got, &floats(&case["llama"]));
        assert!(c >= 0.999, "{text:?}: cosine {c} with llama.cpp");
        worst_llama = worst_llama.min(c);
        // sentence-transformers reads "[CLS]" in a text as the token; Ward reads a caller's text
        // as text (as llama.cpp's special=false does), so those inputs are not the same.
        if case["hf_ids"] == case["ids"] {
            let c = cosine(got, &floats(&case["st"]));
            assert!(
                c >= 0.999,
                "{text:?}: cosine {c} with sentence-transformers"
            );
            worst_st = worst_st.min(c);
            st_compared += 1;
        }
        // The same alone as in the batch, bit for bit.
        let mut alone = bert.embed(&[&ids[i]], &mut ws).unwrap();
        normalize(&mut alone, 384);
        assert_eq!(alone, got, "{text:?}: alone and batched differ");
    }
    assert!(st_compared + 1 >= cases.len());
    eprintln!(
        "worst cosine: {worst_llama:.6} with llama.cpp, {worst_st:.6} with sentence-transformers \
         ({st_compared} inputs)"
    );
}

/// bge-m3's architecture: XLM-RoBERTa with CLS pooling over a unigram vocabulary, its weights
/// random. Token ids are llama.cpp's (the tokenizer test holds them to SentencePiece too), the
/// embeddings llama.cpp's and transformers' XLMRobertaModel's on the checkpoint.
#[test]
fn xlm_roberta_matches_llama_cpp_and_transformers() {
    let gguf = GgufFile::open(&model_path(XLMR)).unwrap();
    let bert = Bert::load(&gguf).unwrap();
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let p = bert.params();
    assert_eq!((p.n_embd, p.n_layer, p.pooling), (64, 2, Pooling::Cls));
    let fx = fixture("xlmr-random-test.json");
    let cases = fx["embeddings"].as_array().unwrap();
    assert!(cases.len() >= 20);
    let (ids, all) = embed_cases(&bert, &tok, cases, &mut EncoderWorkspace::default());
    let (mut worst_llama, mut worst_hf) = (1.0f64, 1.0f64);
    for (i, case) in cases.iter().enumerate() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = floats(&case["ids"]).iter().map(|&x| x as u32).collect();
        assert_eq!(ids[i], want, "{text:?}: token ids differ from llama.cpp's");
        let got = &all[i * 64..][..64];
        let c = cosine(got, &floats(&case["llama"]));
        assert!(c >= 0.999, "{text:?}: cosine {c} with llama.cpp");
        worst_llama = worst_llama.min(c);
        if case["spm_ids"] == case["ids"] {
            let c = cosine(got, &floats(&case["hf"]));
            assert!(c >= 0.999, "{text:?}: cosine {c} with transformers");
            worst_hf = worst_hf.min(c);
        }
    }
    eprintln!("worst cosine: {worst_llama:.6} with llama.cpp, {worst_hf:.6} with transformers");
}

#[test]
fn bad_inputs_are_refused_before_any_work() {
    let gguf = GgufFile::open(&model_path(MINILM)).unwrap();
    let bert = Bert::load(&gguf).unwrap();
    let mut ws = EncoderWorkspace::default();
    let long = vec![1000u32; 513];
    for (input, needle) in [
        (&[][..], "no tokens"),
        (&long[..], "more than 512"),
        (&[101, 30522, 102][..], "outside the 30522-token vocabulary"),
    ] {
        let e = bert.embed(&[&[101, 102], input], &mut ws).unwrap_err();
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn random_qwen3_embedding_matches_llama_cpp() {
    let fx = fixture("embeddings-random-tiny-qwen3-embedding.json");
    let bytes = random_model("tiny-qwen3-embedding", QWEN2, &fx);
    let gguf = GgufFile::from_bytes(bytes).unwrap();
    let model = ward_models::arch::load(&gguf).unwrap();
    assert_eq!(model.hparams().pooling, Some(Pooling::Last));
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let dim = model.hparams().n_embd;
    let mut ws = Workspace::default();
    let mut worst = 1.0f64;
    for case in fx["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let ids = tok.encode_caller(text, true, false, 4096).unwrap();
        let want_ids: Vec<u32> = floats(&case["ids"]).iter().map(|&x| x as u32).collect();
        assert_eq!(ids, want_ids, "{text:?}");
        let mut v = model.embed(&ids, &mut ws).unwrap();
        normalize(&mut v, dim);
        let c = cosine(&v, &floats(&case["llama"]));
        assert!(c >= 0.999, "{text:?}: cosine {c} with llama.cpp");
        worst = worst.min(c);
    }
    eprintln!("worst cosine with llama.cpp: {worst:.6}");
}

/// A reranker's scores (rank pooling) against llama.cpp's in llama-server's pair form and
/// transformers' on the same weights: MiniLM with a seeded head, and XLM-RoBERTa as a sequence
/// classifier (bge-reranker-v2-m3's architecture: `<s> q </s></s> d </s>`, its file with no
/// pooling type, as llama.cpp's converter writes it).
#[test]
fn reranker_scores_match_llama_cpp_and_transformers() {
    check_reranker(MINILM_RERANK, "rerank-minilm.json");
    check_reranker(XLMR_RERANK, "rerank-xlmr.json");
}

fn check_reranker(model: &str, fixture_name: &str) {
    let gguf = GgufFile::open(&model_path(model)).unwrap();
    let bert = Bert::load(&gguf).unwrap();
    assert_eq!(
        (bert.params().pooling, bert.output_dim()),
        (Pooling::Rank, 1)
    );
    let tok = Tokenizer::from_gguf(&gguf).unwrap();
    let fx = fixture(fixture_name);
    let cases = fx["cases"].as_array().unwrap();
    let pairs: Vec<Vec<u32>> = cases
        .iter()
        .map(|c| {
            let (q, d) = (
                c["query"].as_str().unwrap(),
                c["document"].as_str().unwrap(),
            );
            tok.encode_pair(q, d, false, 512).unwrap()
        })
        .collect();
    let inputs: Vec<&[u32]> = pairs.iter().map(Vec::as_slice).collect();
    let scores = bert
        .embed(&inputs, &mut EncoderWorkspace::default())
        .unwrap();
    let mut worst = (0.0f64, 0.0f64);
    for ((case, ids), &score) in cases.iter().zip(&pairs).zip(&scores) {
        let want_ids: Vec<u32> = floats(&case["ids"]).iter().map(|&x| x as u32).collect();
        assert_eq!(ids, &want_ids, "{case}");
        let (llama, hf) = (
            case["llama"].as_f64().unwrap(),
            case["hf"].as_f64().unwrap(),
        );
        let (dl, dh) = ((score as f64 - llama).abs(), (score as f64 - hf).abs());
        assert!(
            dl < 2e-3 && dh < 2e-3,
            "ward {score}, llama.cpp {llama}, transformers {hf}"
        );
        worst = (worst.0.max(dl), worst.1.max(dh));
    }
    // The order of the documents for each query is llama.cpp's.
    for q in scores.chunks(5).zip(cases.chunks(5)) {
        let order = |s: Vec<f64>| {
            let mut i: Vec<usize> = (0..s.len()).collect();
            i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            i
        };
        let llama: Vec<f64> = q.1.iter().map(|c| c["llama"].as_f64().unwrap()).collect();
        assert_eq!(order(q.0.iter().map(|&s| s as f64).collect()), order(llama));
    }
    eprintln!(
        "{model}: largest score difference {:.6} with llama.cpp, {:.6} with transformers",
        worst.0, worst.1
    );
}
