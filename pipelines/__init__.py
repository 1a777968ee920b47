"""The cheque-amount reader built from graph transformers (LeCun, Bottou, Bengio, Haffner 1998)."""
