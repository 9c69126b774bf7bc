"""Small named models for Fashion-MNIST (1x28x28), their training script and trained artifacts."""
