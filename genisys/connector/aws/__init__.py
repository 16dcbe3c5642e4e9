"""The AWS connector backend (``genisys connector --backend aws``): EC2 instances and Auto
Scaling groups as compute resources. Needs boto3 (``pip install 'genisys[aws]'``)."""
