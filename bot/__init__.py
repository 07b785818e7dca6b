"""License Bot: emergency GitLab trial licenses from tracker issues."""

__version__ = "0.1.0"
