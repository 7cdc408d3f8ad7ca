"""LLM labelling of a document sample (medical / edu_score / subdomain) and the audit of the labeller.

Modules: `settings` (config sections), `schema` (labels, results, reply parser), `prompts`, `cache`
(append-only JSONL, `reparse`), the backends `openai_backend`, `hf_backend`, `file_backend`, `runner`
(`label_documents`, failure budget), `sampling` (`sample_documents`) and `audit` (`audit_labels`,
`select_labeller`). Nothing heavy is imported here.
"""
