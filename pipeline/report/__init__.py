"""Reporters: render core results as text, JSON, GitHub annotations, markdown and JUnit."""
