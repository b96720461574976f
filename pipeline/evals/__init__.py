"""Eval engine: suites, assertions, runner, providers (the only litellm import), cache."""
