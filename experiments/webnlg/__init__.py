"""Data-to-text generation from RDF-style triples (paper Tables 13 and 14): WebNLG 2017
(:mod:`experiments.webnlg.data`) and DART (:mod:`experiments.webnlg.dart`), scored with the
WebNLG challenge's BLEU, METEOR and TER (:mod:`experiments.webnlg.metrics`)."""
