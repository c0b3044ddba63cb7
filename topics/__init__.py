"""The topic registry (主题注册表): every topic gridwatch reads or writes, declared once."""

from topics.registry import TOPICS, TopicSpec, topic_names

__all__ = ["TOPICS", "TopicSpec", "topic_names"]
