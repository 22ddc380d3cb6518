# One image for every Pulzar process: `pulzar master`, `pulzar volume`, `pulzar up`.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pulzar ./pulzar
RUN pip install --no-cache-dir '.[ocr,vision]'
RUN useradd --create-home pulzar && mkdir /data && chown pulzar /data
USER pulzar
VOLUME /data
EXPOSE 31414 31415
ENTRYPOINT ["pulzar"]
CMD ["master", "--host", "0.0.0.0", "--data", "/data/master"]
