"""Inputs of the correctness oracle: strings to tokenize, prompts to continue, conversations to
render. Edit here and re-run make-fixtures.sh to regenerate the fixtures."""

TOKENIZER_STRINGS = [
    "Patient is a 67-year-old male presenting with chest pain radiating to the left arm.",
    "Assessment: community-acquired pneumonia, CURB-65 score 2. Plan: admit to ward.",
    "Hx of T2DM, HTN, CKD stage 3b (eGFR 38). NKDA.",
    "Vancomycin 15 mg/kg IV q12h; target trough 15-20 mcg/mL.",
    "Give 5 mg/kg q8h",
    "Paracetamol 1 g PO q6h PRN, max 4 g/24h.",
    "BP 142/91 mmHg, HR 104 bpm, SpO2 93% on RA, T 38.4 °C.",
    "Na+ 131 mmol/L, K+ 5.6 mmol/L, Cr 1.8 mg/dL (baseline 1.1).",
    "患者男性，67岁，主诉胸痛3小时。",
    "诊断：2型糖尿病，高血压病3级（极高危）。",
    "给予阿司匹林100mg口服，每日一次。",
    "中医辨证：气虚血瘀证，治以益气活血。",
    "Der Patient klagt über Übelkeit und Schwindel.",
    "Fièvre à 39,2 °C depuis 48 h, frissons.",
    "Pain score 😣 8/10 → 3/10 after morphine 💉.",
    "🩺🏥❤️‍🩹 follow-up in 2 weeks 👍🏽",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    inner     spaces",
    "\n\nleading newlines",
    "line one\nline two\n\nline four\n",
    "tabs\tand\ttabs\t\tdouble",
    "\r\nWindows line\r\nendings\r\n",
    " ",
    "",
    "a",
    "12345678901234567890",
    "3.14159 2,718 1e-9 -42 +7 0.5mL 0.05%",
    "ICD-10: I21.4, E11.65, N18.32; SNOMED 22298006",
    "<|im_start|>user\nWhat is sepsis?<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nDefine tachycardia.<end_of_turn>\n<start_of_turn>model\n",
    "Text with <|endoftext|> in the middle and <bos> too",
    "It's the patient's wife who'll call; they're sure we've done it, haven't we?",
    "don't DON'T Don't o'clock",
    "<table><tr><td>Hb</td><td>9.8</td></tr></table>",
    "x² + y³ ≤ 10⁻³ ± √2 ÷ ∞",
    "naïve café résumé coöperate",
    "ＡＢＣ　全角スペース",
    "Ελληνικά και Русский текст",
    "\u00a0non-breaking\u00a0space and zero\u200bwidth",
    "url https://ehr.example.org/patients/123?id=45&x=y",
    "                                        long run of spaces",
]

# Prompts continued greedily by llama.cpp; the teacher-forced test replays them.
SMOLLM2_PROMPTS = [
    "The patient was admitted to the intensive care unit because",
    "Common symptoms of type 2 diabetes include",
    "Sepsis is defined as",
    "The recommended adult dose of amoxicillin for community-acquired pneumonia is",
    "A 45-year-old woman presents to the emergency department with",
    "Discharge summary:\nDiagnosis: acute appendicitis.\nProcedure:",
    "Hypertension is a major risk factor for",
    "The function of the kidneys is to",
    "患者主诉头痛三天，伴有",
    "Q: What does a high troponin level indicate?\nA:",
    "List three signs of dehydration in children:\n1.",
    "Nurses should check vital signs every",
]

SMOLLM2_CHATS = [
    [{"role": "user", "content": "What is the normal range of adult resting heart rate?"}],
    [{"role": "system", "content": "You are a concise clinical assistant."},
     {"role": "user", "content": "Explain what an ECG measures."}],
]

# Qwen2.5: English and Chinese clinical prompts (Qwen's strength), and chats through its
# ChatML template with and without a system prompt (the template then adds Qwen's own).
QWEN2_PROMPTS = [
    "The patient was admitted to the intensive care unit because",
    "Common symptoms of type 2 diabetes include",
    "Sepsis is defined as",
    "The recommended adult dose of amoxicillin for community-acquired pneumonia is",
    "Discharge summary:\nDiagnosis: acute appendicitis.\nProcedure:",
    "Q: What does a high troponin level indicate?\nA:",
    "患者主诉头痛三天，伴有",
    "高血压的常见并发症包括",
    "糖尿病患者的饮食建议：\n1.",
    "病历摘要：男性，65岁，因胸痛2小时入院。诊断：",
    "def bmi(weight_kg, height_m):\n    \"\"\"Body mass index.\"\"\"\n",
]

QWEN2_CHATS = [
    [{"role": "user", "content": "What is the normal range of adult resting heart rate?"}],
    [{"role": "system", "content": "You are a concise clinical assistant."},
     {"role": "user", "content": "Explain what an ECG measures."}],
    [{"role": "user", "content": "请简要说明急性心肌梗死的典型症状。"}],
]

GEMMA_PROMPTS = [
    "The patient was admitted to the intensive care unit because",
    "Common symptoms of type 2 diabetes include",
    "Sepsis is defined as",
    "The recommended adult dose of amoxicillin for community-acquired pneumonia is",
    "A 45-year-old woman presents to the emergency department with",
    "Discharge summary:\nDiagnosis: acute appendicitis.\nProcedure:",
    "Hypertension is a major risk factor for",
    "患者主诉头痛三天，伴有",
    "Q: What does a high troponin level indicate?\nA:",
    "List three signs of dehydration in children:\n1.",
]

# A long note so that Gemma's sliding-window layers (window 512) really slide.
LONG_NOTE = """DISCHARGE SUMMARY

Patient: 72-year-old woman. Admission date: day 0. Discharge date: day 9.

History of present illness: The patient presented to the emergency department with three days of progressive shortness of breath, productive cough with green sputum, fever up to 38.9 degrees Celsius, and pleuritic chest pain on the right side. She reported reduced appetite and fatigue. She denied recent travel, sick contacts, hemoptysis, or leg swelling. Her past medical history includes chronic obstructive pulmonary disease with two exacerbations in the past year, hypertension, type 2 diabetes mellitus on metformin, atrial fibrillation on apixaban, and chronic kidney disease stage 3a. She is a former smoker with a 40 pack-year history and quit eight years ago. She lives with her husband and is independent in activities of daily living.

Examination on admission: Temperature 38.6 degrees Celsius, heart rate 112 beats per minute and irregularly irregular, blood pressure 104/62 mmHg, respiratory rate 26 breaths per minute, oxygen saturation 88 percent on room air improving to 94 percent on 2 liters per minute via nasal cannula. She appeared uncomfortable and was using accessory muscles. Auscultation revealed bronchial breath sounds and coarse crackles at the right base with scattered expiratory wheeze bilaterally. Heart sounds were irregular without murmurs. There was no peripheral edema. Abdomen was soft and non-tender.

Investigations: White cell count 16.4 with neutrophilia, C-reactive protein 212 mg/L, procalcitonin 3.1 ng/mL, hemoglobin 118 g/L, platelets 301. Sodium 133 mmol/L, potassium 4.9 mmol/L, urea 11.2 mmol/L, creatinine 142 micromol/L (baseline 105). Lactate 2.4 mmol/L. Arterial blood gas on 2 liters: pH 7.36, pCO2 6.1 kPa, pO2 8.4 kPa, bicarbonate 26 mmol/L. Chest radiograph showed right lower lobe consolidation with a small right pleural effusion. Blood cultures grew Streptococcus pneumoniae sensitive to penicillin. Urinary pneumococcal antigen was positive. Electrocardiogram showed atrial fibrillation with a rapid ventricular response and no acute ischemic changes.

Hospital course: She was diagnosed with severe community-acquired pneumonia (CURB-65 score 3) complicated by sepsis and acute kidney injury, on a background of COPD. She was started on intravenous amoxicillin and clarithromycin, later narrowed to intravenous benzylpenicillin once sensitivities were available, and then switched to oral amoxicillin on day 5 when she was afebrile for 48 hours. She received intravenous fluids with careful monitoring of fluid balance given her age and comorbidities, and her creatinine returned to 110 micromol/L by day 4. Metformin was withheld during the acute kidney injury and restarted on day 6. Her atrial fibrillation rate was controlled with bisoprolol 2.5 mg daily once her blood pressure allowed. Apixaban was continued at the adjusted dose. She received nebulised salbutamol and ipratropium and a five-day course of oral prednisolone 30 mg for the associated COPD exacerbation. Her oxygen requirement fell steadily and she was on room air with saturations of 92 percent from day 7. A repeat chest radiograph on day 8 showed improving consolidation and a stable small effusion that did not require drainage. She was reviewed by physiotherapy and mobilised independently with a walking frame.

Medications on discharge: amoxicillin 1 g orally three times daily for two more days to complete seven days, bisoprolol 2.5 mg once daily (new), apixaban 5 mg twice daily, metformin 500 mg twice daily, ramipril 2.5 mg once daily (restart held until review of renal function), tiotropium inhaler once daily, salbutamol inhaler as required.

Follow-up: General practitioner review in one week with renal function and potassium. Repeat chest radiograph in six weeks to confirm resolution. Respiratory clinic in three months. Pneumococcal and influenza vaccination status to be checked. The patient and her husband were given written advice on red flag symptoms including worsening breathlessness, chest pain, confusion, or reduced urine output, and were advised to return to the emergency department if any of these occur.

Summary for the general practitioner: In summary, this 72-year-old woman"""

# Conversations rendered by Python jinja2 (as transformers' apply_chat_template does).
CONVERSATIONS = [
    [{"role": "user", "content": "What are the signs of sepsis?"}],
    [{"role": "system", "content": "You are a clinical documentation assistant. Be concise."},
     {"role": "user", "content": "Summarise: BP 150/95, HR 88, T 37.1."}],
    [{"role": "system", "content": "Answer in one sentence."},
     {"role": "user", "content": "What is metformin used for?"},
     {"role": "assistant", "content": "Metformin is a first-line medicine for type 2 diabetes."},
     {"role": "user", "content": "And its main risk?"}],
    [{"role": "user", "content": "  Leading and trailing spaces  "},
     {"role": "assistant", "content": "Noted."},
     {"role": "user", "content": "患者发热三天。中文可以吗？"}],
]

# Extra strings for the byte-level BPE tokenizers of Llama 3, Qwen2/3 and DeepSeek (digit
# grouping, newline and whitespace runs, contractions in upper case, marks, special-token texts).
BPE_TOKENIZER_STRINGS = [
    "患者，女，45岁。因“反复上腹痛2年，加重伴黑便3天”入院。查体：T 36.8℃，P 96次/分，BP 100/60mmHg。",
    "胃镜示：胃窦溃疡（A1期），Hp阳性。予奥美拉唑20mg bid，阿莫西林1.0g bid，克拉霉素0.5g bid，疗程14天。",
    "血常规：WBC 12.3×10⁹/L，Hb 86g/L，PLT 245×10⁹/L；CRP 56mg/L。",
    "医嘱：0.9%氯化钠注射液500ml+维生素C 2g ivgtt qd。",
    "1",
    "12",
    "123",
    "1234",
    "12345",
    "123456789012345678901234567890",
    "0000000 00 000 0",
    "1,234,567.89 and 1 234 567",
    "2024-03-15T08:30:00Z, MRN 004512873, bed 12B",
    "+44 20 7946 0958 / ext. 4471",
    "Glucose 5.6 mmol/L (101 mg/dL); HbA1c 48 mmol/mol (6.5%)",
    "Troponin I 0.04 μg/L, 25 µg, 37.5℃, 98.6℉, 120/80 mmHg, 5×10¹²/L",
    "Dose: 0.125 mg → 0.25 mg, ≥18 y, ≤ 65 kg, ~2 h, ±0.5",
    "  two leading",
    "a  b   c    d",
    "\n",
    "\n\n\n",
    "\t",
    " \n",
    "\n ",
    " \n \n",
    "end with space and newline \n",
    "mixed \t \n\t\r\n  \r\r\n\n  done",
    "tabs\t\t\tthen\n\n\n\nnewlines\r\n\r\nand CRLF",
    "punct then newline...\n\n!!\r\n?? \n",
    "👩‍⚕️👨🏾‍⚕️🧑🏻‍🔬 👍🏻👍🏼👍🏽👍🏾👍🏿 🏳️‍🌈 ❤️‍🔥",
    "Emoji between words: fever🤒cough😷rest🛌",
    "def dose(weight_kg: float) -> float:\n    \"\"\"mg per dose\"\"\"\n    if weight_kg <= 0:\n        raise ValueError('weight')\n    return round(weight_kg * 15.0, 1)\n",
    "{\n  \"patient\": {\"id\": 42, \"allergies\": [\"penicillin\"]},\n  \"vitals\": {\"hr\": 88, \"spo2\": 0.97}\n}",
    "for (int i = 0; i < n; ++i) {\n\tsum += x[i];\n}\n",
    "SELECT mrn, dob FROM patients WHERE ward = 'ICU' AND age >= 65;",
    "DON'T STOP. WE'LL SEE. I'M SURE THEY'RE FINE, IT'S OK, YOU'VE GOT IT, HE'D KNOW.",
    "We'Ll mIx'S CaSe'D it'S ' 's 'S '' ''s",
    "rock'n'roll o'neill '90s 'quoted' \"double\"",
    "<|im_start|>system\nYou are a medical assistant.<|im_end|>\n<|im_start|>user\n胸痛怎么办？<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is a normal INR?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    "<｜begin▁of▁sentence｜><｜User｜>What causes anemia?<｜Assistant｜><think>\nIron deficiency first.\n</think>",
    "<|fim_prefix|>def f(x):\n    <|fim_suffix|>\n    return y<|fim_middle|>",
    "text<|endoftext|>more<|im_end|>",
    "<|im_start|><|im_start|> <|im_end|>x",
    "<think>reasoning</think>answer",
    "Metformin (二甲双胍) 500 mg, Aspirin (アスピリン) 100 mg, 아스피린 정",
    "English, Русский, Ελληνικά, עברית, العربية, हिन्दी, ไทย, 日本語, 한국어",
    "नमस्ते डॉक्टर, मुझे बुखार है।",
    "ภาษาไทย: ผู้ป่วยมีไข้",
    "café vs cafe\u0301, n\u0303, a\u0308\u0304",
    "٣٤٥ mg، ①②③, Ⅻ, ½ ¾, ²³",
    "line\u2028separator\u2029paragraph\u0085next",
    "x\u3000y\u00a0z\u2003w",
    "ctrl\u0001char\u001cgroup\u007fdel",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "!!!???...,,,;;;:::---___===+++",
    "~tilde `backtick` ^caret |pipe| $dollar$ @at #hash",
    "a1b2c3 x86_64 COVID-19 SARS-CoV-2 IL-6 HER2+",
    "  \n  indented after newline\n\tand tab",
]

# Tools offered in FAMILY_CONVERSATIONS (OpenAI's `tools` list, keys in the order clients send
# them: templates dump them with tojson, which keeps that order).
FAMILY_TOOLS = [
    {"type": "function",
     "function": {"name": "get_lab_result",
                  "description": "Latest result of a laboratory test for a patient.",
                  "parameters": {"type": "object",
                                 "properties": {"patient_id": {"type": "string", "description": "Hospital number"},
                                                "test": {"type": "string", "enum": ["potassium", "sodium", "creatinine"]}},
                                 "required": ["patient_id", "test"]}}},
    {"type": "function",
     "function": {"name": "dose_for_weight",
                  "description": "按体重计算剂量 (mg/kg × kg), <= max & no rounding.",
                  "parameters": {"type": "object",
                                 "properties": {"mg_per_kg": {"type": "number"},
                                                "weight_kg": {"type": "number", "minimum": 0.5}},
                                 "required": ["mg_per_kg", "weight_kg"]}}},
]

# Conversations rendered through each template of scripts/reference/templates.py, as an
# OpenAI-style client sends them: an assistant turn that calls tools has content None and the
# calls' arguments as JSON text.
_CALL = {"id": "call_1", "type": "function",
         "function": {"name": "get_lab_result", "arguments": "{\"patient_id\": \"A-17\", \"test\": \"potassium\"}"}}
_CALL2 = {"id": "call_2", "type": "function",
          "function": {"name": "dose_for_weight", "arguments": "{\"mg_per_kg\": 15, \"weight_kg\": 72.5}"}}
FAMILY_CONVERSATIONS = [
    {"name": "one-question", "messages": [{"role": "user", "content": "What are the signs of sepsis?"}]},
    {"name": "system-multi-turn", "messages": [
        {"role": "system", "content": "You are a concise clinical assistant.  "},
        {"role": "user", "content": "What is metformin used for?"},
        {"role": "assistant", "content": "Type 2 diabetes."},
        {"role": "user", "content": "  And its main risk?  "}]},
    {"name": "chinese", "messages": [
        {"role": "system", "content": "请用中文回答。"},
        {"role": "user", "content": "患者发热三天，体温39.2°C。下一步？"}]},
    {"name": "tools-offered", "tools": FAMILY_TOOLS, "messages": [
        {"role": "user", "content": "Is patient A-17's potassium high?"}]},
    {"name": "tools-offered-with-system", "tools": FAMILY_TOOLS, "messages": [
        {"role": "system", "content": "You are a ward assistant with access to the lab system."},
        {"role": "user", "content": "Is patient A-17's potassium high?"}]},
    {"name": "tool-call-and-result", "tools": FAMILY_TOOLS, "messages": [
        {"role": "user", "content": "Is patient A-17's potassium high?"},
        {"role": "assistant", "content": None, "tool_calls": [_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"value\": 5.6, \"unit\": \"mmol/L\"}"},
        {"role": "assistant", "content": "Yes: 5.6 mmol/L is above the range."},
        {"role": "user", "content": "Thanks."}]},
    {"name": "tool-result-last", "tools": FAMILY_TOOLS, "messages": [
        {"role": "system", "content": "Use the tools."},
        {"role": "user", "content": "Dose of vancomycin for 72.5 kg at 15 mg/kg?"},
        {"role": "assistant", "content": "Let me calculate.", "tool_calls": [_CALL2]},
        {"role": "tool", "tool_call_id": "call_2", "content": "1087.5 mg"}]},
    {"name": "parallel-tool-calls", "tools": FAMILY_TOOLS, "messages": [
        {"role": "user", "content": "Potassium of A-17 and the dose for 72.5 kg at 15 mg/kg?"},
        {"role": "assistant", "content": None, "tool_calls": [_CALL, _CALL2]},
        {"role": "tool", "tool_call_id": "call_1", "content": "5.6 mmol/L"},
        {"role": "tool", "tool_call_id": "call_2", "content": "1087.5 mg"}]},
    {"name": "builtin-tool-call", "messages": [
        {"role": "user", "content": "Search for the latest sepsis guideline."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_3", "type": "function",
             "function": {"name": "brave_search", "arguments": "{\"query\": \"surviving sepsis guideline\"}"}}]},
        {"role": "tool", "tool_call_id": "call_3", "content": "Surviving Sepsis Campaign 2021."}]},
    {"name": "thinking-in-past-turn", "messages": [
        {"role": "user", "content": "Is 5.6 mmol/L potassium high?"},
        {"role": "assistant", "content": "<think>\nNormal is 3.5-5.0.\n</think>\n\nYes, mildly high."},
        {"role": "user", "content": "What should we do?"}]},
    {"name": "reasoning-content-field", "messages": [
        {"role": "user", "content": "Is 5.6 mmol/L potassium high?"},
        {"role": "assistant", "content": "Yes, mildly high.", "reasoning_content": "Normal is 3.5-5.0."},
        {"role": "user", "content": "患者需要复查吗？"}]},
    {"name": "thinking-last-turn", "messages": [
        {"role": "user", "content": "Is 5.6 mmol/L potassium high?"},
        {"role": "assistant", "content": "<think>\nNormal is 3.5-5.0.\n</think>\n\nYes, mildly high."}]},
    {"name": "no-think-switch", "messages": [
        {"role": "system", "content": "Be brief. /no_think"},
        {"role": "user", "content": "Normal adult heart rate? /no_think"},
        {"role": "assistant", "content": "<think>\n\n</think>\n\n60-100 bpm."},
        {"role": "user", "content": "And in newborns? /think"}]},
]

# Extra template variables per template in templates.py (each conversation is rendered with
# each of these): Llama 3.x's date and tool placement as llama.cpp's server sets them and as
# transformers leaves them, Qwen3's enable_thinking switch.
FAMILY_KWARGS = {
    "llama3.1-instruct": [{"date_string": "26 Nov 2025", "tools_in_user_message": False}, {},
                          {"date_string": "26 Nov 2025", "builtin_tools": ["brave_search", "code_interpreter"]}],
    "llama3.2-instruct": [{"date_string": "26 Nov 2025", "tools_in_user_message": False}, {}],
    "qwen3": [{}, {"enable_thinking": False}, {"enable_thinking": True}],
}


# Texts embedded by llama.cpp and sentence-transformers for the embedding fixtures: clinical
# English, Chinese (each CJK character is its own word), accents, punctuation runs, words longer
# than the vocabulary knows, and a text longer than one ubatch of a small --max-batch-tokens.
EMBEDDING_TEXTS = [
    "Patient is a 67-year-old male presenting with chest pain radiating to the left arm.",
    "Acute myocardial infarction",
    "Heart attack",
    "Vancomycin 15 mg/kg IV q12h; target trough 15-20 mcg/mL.",
    "BP 142/91 mmHg, HR 104 bpm, SpO2 93% on RA, T 38.4 °C.",
    "患者男性，67岁，主诉胸痛3小时。",
    "naïve café résumé coöperate, Übelkeit und Schwindel",
    "don't DON'T o'clock -- ... !!! ???",
    "pneumonoultramicroscopicsilicovolcanoconiosis and hepaticocholangiogastrostomy",
    "ICD-10: I21.4, E11.65, N18.32; SNOMED 22298006",
    "   leading and trailing spaces   ",
    "Ελληνικά και Русский текст 🩺🏥",
    "a",
    "A caller's [CLS] and [SEP] and [MASK] stay text",
    " ".join(["The discharge summary lists the diagnoses, procedures, medications and follow-up plan."] * 12),
]

# Besides the texts above, what the XLM-RoBERTa test model's unigram tokenizer (a Japanese
# SentencePiece vocabulary, NFKC charsmap) is held to: CJK, full- and half-width forms, the
# charsmap's compatibility characters, runs of whitespace, and a caller's control-token texts.
UNIGRAM_STRINGS = [
    "東京都の患者は発熱と咳を訴えた。",
    "中文病历：患者主诉头痛三天，体温38.5℃。",
    "ＡＢＣ　１２３　ｶﾀｶﾅ ﾃｽﾄ ｶﾞｷﾞｸﾞ",
    "①②③ ㍻ ㌔ ﬁle ™ ½ Ⅳ ㎎ ㏄",
    "  multiple   spaces\tand\ttabs\nnew  lines  ",
    "<s> a caller's </s> <unk> <pad> <mask> text",
    "𝐟𝐞𝐯𝐞𝐫 and ｆｅｖｅｒ",
    "カタカナとひらがなと漢字、そしてEnglish words.",
    "\u3000\u3000全角スペース\u3000",
    "x",
]

# Query and documents the reranker fixtures score (every pair), as a retrieval step would.
RERANK_QUERIES = [
    "What is the first-line treatment for community-acquired pneumonia?",
    "患者胸痛的鉴别诊断",
]
RERANK_DOCUMENTS = [
    "Amoxicillin is recommended as first-line therapy for outpatients with community-acquired pneumonia.",
    "The cafeteria is open from 7 am to 7 pm on weekdays.",
    "急性心肌梗死、肺栓塞和主动脉夹层是胸痛的重要鉴别诊断。",
    "Vancomycin 15 mg/kg IV q12h; target trough 15-20 mcg/mL.",
    "Chest pain with ST elevation requires immediate reperfusion therapy.",
]
