"""Delivery (通知送达): rosters, signed webhooks, e-mail, receipts and CAP, turning escalations
into messages to the people on duty."""
