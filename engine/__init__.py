"""featurelake: declarative ML features on Spark, Delta, Ray and MLflow."""
