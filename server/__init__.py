"""Real-time notification backend of a CRM."""
