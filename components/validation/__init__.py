"""Data checks after StatisticsGen and SchemaGen: label drift between spans, the
anomalies ExampleValidator found, the DataGate that stops a run before Transform, and
which data passed (from ML Metadata)."""
