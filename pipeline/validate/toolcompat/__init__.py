"""Tool schemas against every provider in an agent's model chain.

A tool file is one OpenAI function ``{name, description, parameters, strict?}``. litellm
(pinned at 1.106.2) turns it into each provider's wire format, and on the way it rewrites or
drops parts of the schema without a word. This module says, before anything is deployed, which
provider rejects the request (an error) and what each provider's model will really see where
the schema is silently degraded (a warning).

Every claim below was checked against litellm 1.106.2 by calling its own transformation on a
schema (``tests/test_toolcompat.py`` keeps doing so); the functions are named where they act:

* OpenAI, ``openai/``: ``OpenAIGPTConfig._sanitized_tools_update_for_openai`` drops regexes
  Python cannot compile (``drop_non_python_regex_patterns``) and, for api.openai.com, merges
  top-level ``anyOf``/``oneOf``/``allOf`` branches (``flatten_top_level_schema_combinators``).
  Everything else reaches OpenAI unchanged, so OpenAI's own rules apply (Structured Outputs
  "Supported schemas"; API errors "object schema missing properties", "'oneOf' is not
  permitted", "string_above_max_length", "array_above_max_length").
* Anthropic: ``AnthropicConfig._map_tool_helper`` builds ``{name, input_schema, type,
  description}`` and never copies ``strict``; ``sanitize_input_schema_for_anthropic`` forces the
  root to ``type: object`` and keeps only ``type``, ``properties``, ``additionalProperties``,
  ``required``, ``$defs`` and ``strict`` there; ``_build_anthropic_tool_name_maps`` rewrites
  names outside ``^[a-zA-Z0-9_-]{1,128}$``. Strict-mode limits: Anthropic "Structured outputs"
  (20 strict tools, 24 optional parameters, 16 union parameters, no numeric/string bounds).
* Gemini: ``VertexGeminiConfig._map_function`` runs ``remove_additional_properties``,
  ``remove_strict_from_schema`` and ``build_vertex_schema`` (``unpack_defs``,
  ``convert_anyof_null_to_nullable``, ``_convert_schema_types``, ``_fix_enum_empty_strings``,
  ``_fix_enum_types``, ``process_items``, ``add_object_type``, ``filter_schema_fields`` against
  the ``Schema`` TypedDict). Gemini then rejects ``required`` names that are not properties,
  non-string enum values, a non-OBJECT root and more than 128 declarations.

The package: ``common`` (provider families, the finding collector, the schema walk),
``metaschema`` (is ``parameters`` JSON Schema at all), ``tool`` (one tool: its name, then each
provider), ``openai``, ``anthropic``, ``gemini`` with ``gemini_keywords`` (one rule set each),
``limits`` (over all tools of an agent).
"""

from __future__ import annotations

from pipeline.validate.toolcompat.anthropic import ANTHROPIC_STRICT_LIMITS
from pipeline.validate.toolcompat.common import Chain, Family, Path, provider_family
from pipeline.validate.toolcompat.common import walk as _walk  # noqa: F401 - tests walk with it
from pipeline.validate.toolcompat.limits import check_tool_set
from pipeline.validate.toolcompat.metaschema import (
    check_parameters_schema,
    metaschema_validator,
)
from pipeline.validate.toolcompat.metaschema import (  # noqa: F401 - tests compare it to jsonschema
    metaschema_errors as _metaschema_errors,
)
from pipeline.validate.toolcompat.tool import PORTABLE_NAME, check_tool

__all__ = [
    "ANTHROPIC_STRICT_LIMITS",
    "PORTABLE_NAME",
    "Chain",
    "Family",
    "Path",
    "check_parameters_schema",
    "check_tool",
    "check_tool_set",
    "metaschema_validator",
    "provider_family",
]
