FROM python:3.11-slim
WORKDIR /app
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir uv==0.13.8 && uv pip sync --system requirements.lock \
    && uv pip install --system psycopg2-binary dagster-postgres==0.29.27
COPY . .
RUN uv pip install --system --no-deps -e .
