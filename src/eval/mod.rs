//! facenet's verification protocol as a library: LFW-style pairs (`lfw`), its metrics (`metrics`: 10-fold
//! accuracy, VAL at a FAR, AUC, EER) and PNG plots of ROC and training curves (`plot`).

pub mod lfw;
pub mod metrics;
pub mod plot;
